"""The Ray cluster KubeRay would start from a pod template: a local Ray head with the pod's env.

On Kubernetes, Ray's workers inherit their container's env (the chart's Secrets and
ConfigMaps, resolved by the kubelet). The session's shared Ray head was started with the test
services' variables, so its workers would find S3 and MLflow credentials that the chart never
gave. The end-to-end test therefore starts its own head whose process env is the pod's
container env (`podenv.container_env` plus the image's, see `release.image_env`) and nothing
else: a Secret missing a key is missing for every worker too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fixtures.services import start_ray


@contextmanager
def pod_ray(pod_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """A Ray head whose env (and so its workers') is `pod_env`; yields its address."""
    # Ray's unix socket paths must stay under 108 characters: a short dir under /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="tfpod-", dir="/tmp"))
    try:
        cluster, process = start_ray(temp_dir, log_dir / "pod-ray-head.log", base_env=pod_env)
        try:
            yield cluster.address
        finally:
            process.stop(grace_s=3)  # gcs_server ignores SIGTERM for 20 s+ (see services.py)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
