"""Each locally built image starts and its entry point answers (`--help` / import check).

The images come from `make images` (docker/Dockerfile.*, on the local Debian base, CPU torch).
They run under podman without a network, as the user the chart runs them as.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cluster.images import LocalImage, local_images, podman_run

pytestmark = pytest.mark.cluster

TORCH_STACK = ("torch", "diffusers", "transformers", "peft", "accelerate")


@pytest.fixture(scope="module")
def images() -> dict[str, LocalImage]:
    return local_images()


def _config(image: LocalImage) -> dict[str, object]:
    out = subprocess.run(
        ["podman", "image", "inspect", image.reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[0]["Config"]


def test_operator_image_runs_the_operator_as_65532_without_torch(
    images: dict[str, LocalImage],
) -> None:
    image = images["operator"]
    config = _config(image)
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["python", "-m", "tuneforge_operator"]
    probe = (
        "import importlib.util, os, tuneforge_operator.app, kopf; "
        f"print(os.getuid(), [m for m in {TORCH_STACK!r} if importlib.util.find_spec(m)])"
    )
    assert podman_run(image, "-c", probe, entrypoint="python").split() == ["65532", "[]"]
    assert "Usage: tuneforge" in podman_run(image, "--help", entrypoint="tuneforge")


def test_trainer_image_default_command_prints_the_trainer_help(
    images: dict[str, LocalImage],
) -> None:
    image = images["trainer"]
    assert _config(image)["User"] == "1000:1000"
    output = podman_run(image)  # tini -- python -m tuneforge_trainer --help
    assert "usage" in output.lower() and "run" in output, output
    cpu = podman_run(image, "python", "-c", "import torch, deepspeed; print(torch.version.cuda)")
    assert cpu.split()[-1] == "None", "the local trainer image must carry the CPU torch"


def test_serving_image_imports_the_serve_app_and_ray_serve_cli(
    images: dict[str, LocalImage],
) -> None:
    image = images["serving"]
    assert _config(image)["User"] == "1000:1000"
    assert "Usage: serve" in podman_run(image, "serve", "--help")
    output = podman_run(
        image, "python", "-c", "import tuneforge_serving.app, torch; print(torch.version.cuda)"
    )
    assert output.split()[-1] == "None"
