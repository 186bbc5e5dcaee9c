"""What KubeRay needs of the trainer image, checked on the image itself (podman, no network).

Both tests are strict xfails: they record two findings of the real Ray pods
(docs/pods.md, "What real Ray pods found") and fail loudly (XPASS) once the image is fixed,
which is when the KubeRay stand-in's `login_shell=False` and `inject_probes=False` in
test_ray_cluster_pods.py must go.
"""

from __future__ import annotations

import pytest

from tests.cluster.images import LocalImage, local_images, podman_run

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def trainer() -> LocalImage:
    return local_images("trainer")["trainer"]


@pytest.mark.xfail(
    strict=True,
    reason="KubeRay starts Ray with `/bin/bash -lc`; Debian's /etc/profile resets PATH for "
    "non-root users, so the image's venv (/opt/venv/bin, set only by ENV PATH) is lost: `ray` "
    "is not found and `python` is the system's. Fix in docker/Dockerfile.trainer, e.g. "
    "/etc/profile.d/ that puts /opt/venv/bin first.",
)
def test_a_login_shell_finds_the_venvs_ray_and_python(trainer: LocalImage) -> None:
    found = podman_run(
        trainer, "-lc", "command -v ray || echo no-ray; command -v python", entrypoint="/bin/bash"
    )
    assert found.split() == ["/opt/venv/bin/ray", "/opt/venv/bin/python"], found


@pytest.mark.xfail(
    strict=True,
    reason="the image installs ray[train] without ray[default]: no aiohttp, aiohttp_cors or "
    "grpc, so the head's dashboard runs without its HTTP server. KubeRay's readiness and "
    "liveness probes (/api/gcs_healthz, /api/local_raylet_healthz) and the RayJob's job "
    "submission (`ray job submit` to :8265) need it. Fix: ray[default,train] in pyproject's "
    "trainer extra.",
)
def test_the_image_has_rays_dashboard_http_dependencies(trainer: LocalImage) -> None:
    probe = "import aiohttp, aiohttp_cors, grpc; print('dashboard-deps-ok')"
    assert "dashboard-deps-ok" in podman_run(trainer, "python", "-c", probe)
