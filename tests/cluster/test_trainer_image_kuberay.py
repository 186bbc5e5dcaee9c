"""What KubeRay needs of the trainer image, checked on the image itself (podman, no network).

Two findings of the real Ray pods (docs/pods.md, "What real Ray pods found"), fixed in the
images: KubeRay starts Ray under `/bin/bash -lc`, whose /etc/profile resets PATH (the images
put the venv first again in /etc/profile.d), and its probes and job submission need Ray's
dashboard HTTP server (the trainer extra installs ray[default,train]).
"""

from __future__ import annotations

import pytest

from tests.cluster.images import LocalImage, local_images, podman_run

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def trainer() -> LocalImage:
    return local_images("trainer")["trainer"]


def test_a_login_shell_finds_the_venvs_ray_and_python(trainer: LocalImage) -> None:
    found = podman_run(
        trainer, "-lc", "command -v ray || echo no-ray; command -v python", entrypoint="/bin/bash"
    )
    assert found.split() == ["/opt/venv/bin/ray", "/opt/venv/bin/python"], found


def test_the_image_has_rays_dashboard_http_dependencies(trainer: LocalImage) -> None:
    probe = "import aiohttp, aiohttp_cors, grpc; print('dashboard-deps-ok')"
    assert "dashboard-deps-ok" in podman_run(trainer, "python", "-c", probe)
