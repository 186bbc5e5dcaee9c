"""Mixed-batching integration fixtures: the Serve app (`tuneforge_serving.app`) with
`mixedBatching.enabled` on the session's Ray cluster, adapters in the real MLflow registry
with S3 artifacts (`registered` comes from tests/fixtures/serving.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.serving import serve_app

MIXED_APP_NAME = "tuneforge-mixed-itest"


@pytest.fixture(scope="module")
def mixed_serve_url(
    services_env: dict[str, str],
    ray_cluster: Any,
    registered: dict[str, str],
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The mixed-batching app via `serve.run`; yields its base URL once /readyz is 200."""
    args = {
        "baseModel": str(tiny_model_dir),
        "cacheDir": str(tmp_path_factory.mktemp("mixed-serve-cache")),
        "adapterLruSize": 4,
        "hostCacheSize": 16,
        "maxConcurrentRequests": 16,
        "maxQueuedRequests": 64,
        "hotswap": {"maxLoraRank": 8},
        "limits": {"maxWidth": 128, "maxHeight": 128},
        "auth": {"enabled": False},
        "mixedBatching": {"enabled": True, "maxBatchSize": 4, "maxWaitS": 0.05},
    }
    with serve_app(ray_cluster, services_env, MIXED_APP_NAME, args) as url:
        yield url
