"""Mixed-batching integration fixtures: the Serve app (`tuneforge_serving.app`) with
`mixedBatching.enabled` on the session's Ray cluster, adapters in the real MLflow registry
with S3 artifacts.

`registry_settings` and `registered` are the serving suite's fixtures, reused as they are.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures._procs import LOOPBACK, free_port
from tests.integration.serving.conftest import registered, registry_settings

__all__ = ["registered", "registry_settings"]

MIXED_APP_NAME = "tuneforge-mixed-itest"
READY_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def mixed_serve_url(
    services_env: dict[str, str],
    ray_cluster: Any,
    registered: dict[str, str],
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The mixed-batching app via `serve.run`; yields its base URL once /readyz is 200."""
    from ray import serve
    from tuneforge_serving.app import build_app

    ray_cluster.connect(env=services_env)
    port = free_port()
    serve.start(http_options={"host": LOOPBACK, "port": port})
    args = {
        "baseModel": str(tiny_model_dir),
        "cacheDir": str(tmp_path_factory.mktemp("mixed-serve-cache")),
        "adapterLruSize": 4,
        "hostCacheSize": 16,
        "maxConcurrentRequests": 16,
        "maxQueuedRequests": 64,
        "hotswap": {"maxLoraRank": 8},
        "limits": {"maxWidth": 128, "maxHeight": 128},
        "auth": {"tokenEnv": None},
        "mixedBatching": {"enabled": True, "maxBatchSize": 4, "maxWaitS": 0.05},
    }
    url = f"http://{LOOPBACK}:{port}"
    try:
        serve.run(build_app(args), name=MIXED_APP_NAME, route_prefix="/", blocking=False)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mixed serving app not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(1)
        yield url
    finally:
        serve.delete(MIXED_APP_NAME)
        serve.shutdown()
