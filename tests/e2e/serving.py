"""Step 6 of the end-to-end flow: the chart's RayService application on the local Ray.

KubeRay would start a Ray cluster from the RayService and submit its `serveConfigV2`. Here the
one application it lists is deployed with Ray Serve's Python API on a Ray head started with
the RayService head container's resolved env and nothing else (podray.py: a RayService pod
has it as its process env, and its replicas inherit it): the same import path, name, route
prefix and args. Only the HTTP listener differs: 127.0.0.1 on a free port instead of the
pod's 0.0.0.0:8000.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.podenv import container_env
from tests.e2e.podray import pod_ray
from tests.e2e.release import Release
from tests.fixtures._procs import LOOPBACK, free_port
from tuneforge.embedded.serving import wait_until_ready

READY_TIMEOUT_S = 300.0


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@contextmanager
def start_serving(release: Release, image_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """Deploy the RayService's application; yield its base URL once /readyz answers 200."""
    import ray
    from ray import serve

    rayservice = release.read_back("RayService", "-serving")
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    env = container_env(release.kube, head["containers"][0], release.namespace, "serving-head")
    env.update(image_env)
    (application,) = release.serve_config()["applications"]
    if ray.is_initialized():  # another test's connection, to another cluster
        ray.shutdown()
    with pod_ray(env, log_dir) as address:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
        port = free_port()
        url = f"http://{LOOPBACK}:{port}"
        started = time.monotonic()
        try:
            serve.start(http_options={"host": LOOPBACK, "port": port})
            builder = _import(application["import_path"])
            serve.run(
                builder(application["args"]),
                name=application["name"],
                route_prefix=application["route_prefix"],
                blocking=False,
            )
            wait_until_ready(url, READY_TIMEOUT_S)
            print(f"e2e: Serve application ready in {time.monotonic() - started:.0f} s")
            yield url
        finally:
            serve.delete(application["name"])
            serve.shutdown()
            ray.shutdown()
