"""The three images come from the same pyproject extras; the operator image holds no torch.

These static checks guard the production defaults (registry bases, CUDA torch), which this
machine cannot build; `make images` builds the same Dockerfiles with local build arguments
(local Debian base, CPU torch) and tests/cluster/test_images.py starts them. The operator
extra's dependency closure is computed from the installed distributions' metadata.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.helm.helmchart import REPO_ROOT
from tests.unit.helm.imagefiles import (
    DOCKER,
    dockerfile,
    installed_locks,
    instructions,
    makefile_lock_extras,
)

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
TORCH_STACK = {"torch", "diffusers", "transformers", "peft", "accelerate", "deepspeed"}


def _project_installs(text: str) -> list[str]:
    """The hashed locks a Dockerfile installs (each compiled from pyproject extras by `make lock`;
    the project itself follows with --no-deps, tests/unit/helm/test_image_locks.py)."""
    return installed_locks(text)


def _requirements_closure(requirements: list[str], extras: set[str]) -> set[str]:
    """Distribution names reachable from these requirements (installed metadata, markers applied)."""
    seen: set[str] = set()
    queue = [(Requirement(r), extras) for r in requirements]
    while queue:
        requirement, active = queue.pop()
        environment = [{"extra": e} for e in (active or {""})]
        if requirement.marker and not any(requirement.marker.evaluate(env) for env in environment):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        queue += [(Requirement(r), set(requirement.extras)) for r in requires]
    return {key.split("[")[0] for key in seen}


def test_operator_extra_pulls_no_torch_stack() -> None:
    project = PYPROJECT["project"]
    closure = _requirements_closure(
        project["dependencies"] + project["optional-dependencies"]["operator"], set()
    )
    assert "kopf" in closure and "pydantic" in closure, closure
    assert not closure & TORCH_STACK, f"the operator image would carry {closure & TORCH_STACK}"
    assert not {n for n in closure if n == "ray"}, "the operator needs no Ray"


def test_operator_image_installs_only_the_operator_extra() -> None:
    text = dockerfile("operator")
    assert _project_installs(text) == ["operator"]
    lowered = " ".join(instructions(text)).lower()
    assert "torch==" not in lowered and "cuda" not in lowered
    assert re.search(
        r"^ARG BASE_IMAGE=python:[0-9.]+-slim-bookworm@sha256:[0-9a-f]{64}$", text, re.M
    )
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert 'ENTRYPOINT ["python", "-m", "tuneforge_operator"]' in text
    assert re.search(r"^USER 65532:65532$", text, re.M), "the chart runs it as 65532"
    # kopf's peering identity calls getpass.getuser(): the UID needs a name (or USER set).
    assert "useradd --uid 65532" in " ".join(instructions(text))
    assert re.search(r"^ENV USER=\S+$", text, re.M)
    assert "find_spec(m) is not None" in text, "the build-time no-torch guard is gone"


def _torch_pin() -> str:
    pins = [
        r
        for r in PYPROJECT["project"]["optional-dependencies"]["torch-stack"]
        if r.startswith("torch==")
    ]
    assert len(pins) == 1
    return pins[0].split("==")[1]


@pytest.mark.parametrize(("name", "extra"), [("trainer", "trainer"), ("serving", "serving")])
def test_gpu_images_install_cuda_torch_first_then_their_extra(name: str, extra: str) -> None:
    text = dockerfile(name)
    steps = instructions(text)
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[0-9.]+-cudnn-runtime-", text, re.M)
    assert f"ARG TORCH_VERSION={_torch_pin()}" in text, "Docker torch must equal pyproject's pin"
    torch_step = next(i for i, s in enumerate(steps) if "--index-url" in s and "torch==" in s)
    lock_step = next(i for i, s in enumerate(steps) if f"requirements/{extra}.lock" in s)
    project_step = next(i for i, s in enumerate(steps) if "--no-build-isolation ." in s)
    assert torch_step < lock_step < project_step
    assert torch_step < project_step, "the CUDA torch must be installed before the extra"
    assert _project_installs(text)[0] == extra
    assert "torch.version.cuda" in steps[project_step], "no check that torch stayed a CUDA build"
    assert "${TORCH_BUILD}" in steps[project_step]
    # Production defaults; `make images` overrides each for its local CPU build.
    assert re.search(r"^ARG TORCH_BUILD=cuda$", text, re.M)
    assert re.search(
        r"^ARG UV_IMAGE=ghcr\.io/astral-sh/uv:[0-9.]+@sha256:[0-9a-f]{64}$", text, re.M
    )
    assert re.search(r"^ARG UV_PYTHON_PREFERENCE=only-managed$", text, re.M)
    assert re.search(r"^ARG TORCH_FIND_LINKS=$", text, re.M)
    assert re.search(r"^USER 1000:1000$", text, re.M), "the serving pods run as 1000"
    assert "wget" in text, "KubeRay's probes run wget inside Ray pods"
    assert set(_project_installs(text)) <= {extra, f"{extra}-deepspeed"}
    # KubeRay starts Ray under `bash -lc`; Debian's /etc/profile resets PATH without this.
    assert "'export PATH=/opt/venv/bin:$PATH\\n' > /etc/profile.d/" in text


def test_ray_images_carry_rays_dashboard_for_kuberays_probes_and_job_submission() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra, ray_extras in (("trainer", {"default", "train"}), ("serving", {"serve"})):
        (ray,) = [Requirement(r) for r in extras[extra] if Requirement(r).name == "ray"]
        assert ray_extras <= ray.extras, extra  # ray[serve] includes ray[default]


def test_extras_exist_in_pyproject() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for name in ("operator", "trainer", "serving"):
        for lock in _project_installs(dockerfile(name)):
            for extra in makefile_lock_extras()[lock]:
                assert extra in extras, f"Dockerfile.{name} installs unknown extra {extra}"


def test_dockerignore_keeps_the_build_context_small_but_complete() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", "tests"} <= set(lines)
    assert "!README.md" in lines, "pyproject's readme must reach the build"
    for folder in ("sdk", "operator", "trainer", "serving"):
        assert folder not in lines
    for name in ("operator", "trainer", "serving"):
        copied = re.findall(r"^COPY (\S+) ", dockerfile(name), re.M)
        assert {"pyproject.toml", "sdk", "operator"} <= set(copied)


def test_chart_defaults_name_these_images() -> None:
    import yaml

    values = yaml.safe_load((REPO_ROOT / "helm" / "tuneforge" / "values.yaml").read_text())
    assert values["image"]["repository"].endswith("tuneforge-operator")
    assert values["trainer"]["image"]["repository"].endswith("tuneforge-trainer")
    assert values["serving"]["image"]["repository"].endswith("tuneforge-serving")
    assert Path(DOCKER / "Dockerfile.operator").exists()


def test_trainer_image_installs_deepspeed_by_default_without_nvcc() -> None:
    text = dockerfile("trainer")
    assert re.search(r"^ARG INSTALL_DEEPSPEED=true$", text, re.M), "DeepSpeed must be a default"
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[0-9.]+-cudnn-runtime-", text, re.M)
    steps = instructions(text)
    deepspeed_step = next(s for s in steps if s.startswith("RUN ") and "deepspeed.lock" in s)
    # Its setup.py imports torch; setuptools comes from trainer.lock, installed before.
    assert "--no-build-isolation" in deepspeed_step.split("trainer-deepspeed.lock")[0]
    assert "import deepspeed" in deepspeed_step, "no build-time check that DeepSpeed imports"
    assert "torch.version.cuda" in deepspeed_step.split("trainer-deepspeed.lock")[1]
    env = next(s for s in steps if s.startswith("ENV "))
    assert "DS_BUILD_OPS=0" in env, "ops would be compiled at build time (needs nvcc)"
    assert "trainer-deepspeed" in _project_installs(text)
    assert "deepspeed" in makefile_lock_extras()["trainer-deepspeed"]


def test_deepspeed_gets_a_torch_optimizer_so_no_fused_ops_are_built() -> None:
    """The runtime base has no nvcc: DeepSpeed must never build its own (fused) optimizer."""
    from tuneforge.api import MixedPrecision
    from tuneforge_trainer.strategies.base import World
    from tuneforge_trainer.strategies.deepspeed import deepspeed_config

    for precision in MixedPrecision:
        config = deepspeed_config(World(), 2, 1, 1.0, 3, precision)
        assert "optimizer" not in config and "scheduler" not in config
        assert config["zero_allow_untested_optimizer"] is True


@pytest.mark.parametrize("name", ["operator", "trainer", "serving"])
def test_dockerfiles_use_no_heredocs(name: str) -> None:
    """buildah before 1.33 (Debian 12 has 1.28) and docker's classic builder cannot read them."""
    assert not re.search(r"^RUN\b.*<<", dockerfile(name), re.M)
