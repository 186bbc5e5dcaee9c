"""Step 6 of the end-to-end flow: the chart's RayService application on the local Ray.

KubeRay would start a Ray cluster from the RayService and submit its `serveConfigV2`. Here the
one application it lists is deployed on the test's Ray head with Ray Serve's Python API: the
same import path, name, route prefix and args, and the RayService head container's resolved
env as the job's runtime env (a RayService pod has it as its process env). Only the HTTP
listener differs: 127.0.0.1 on a free port instead of the pod's 0.0.0.0:8000.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.e2e.podenv import container_env
from tests.e2e.release import Release
from tests.fixtures._procs import LOOPBACK, free_port
from tuneforge.embedded.serving import wait_until_ready

READY_TIMEOUT_S = 300.0


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@contextmanager
def start_serving(release: Release, ray_cluster: Any, image_env: dict[str, str]) -> Iterator[str]:
    """Deploy the RayService's application; yield its base URL once /readyz answers 200."""
    import ray
    from ray import serve

    rayservice = release.read_back("RayService", "-serving")
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    env = container_env(release.kube, head["containers"][0], release.namespace, "serving-head")
    env.update({k: v for k, v in image_env.items() if k == "HOME"})
    (application,) = release.serve_config()["applications"]
    was_connected = ray.is_initialized()
    if was_connected:  # another test's connection: its runtime env is not ours
        ray.shutdown()
    ray_cluster.connect(env=env)
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
        ray_cluster.disconnect()
