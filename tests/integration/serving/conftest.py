"""Serving integration fixtures: the Serve application running on the session's Ray cluster
(private network namespace), over adapters registered in the real MLflow with S3 artifacts
(`registered` and `registry_settings` come from tests/fixtures/serving.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.serving import serve_app

APP_NAME = "tuneforge-itest"


@pytest.fixture(scope="module")
def serve_url(
    services_env: dict[str, str],
    ray_cluster: Any,
    registered: dict[str, str],
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The serving app via `serve.run(build_app(args))`; yields its base URL once /readyz is 200."""
    args = {
        "baseModel": str(tiny_model_dir),
        "cacheDir": str(tmp_path_factory.mktemp("serve-cache")),
        "adapterLruSize": 3,
        "hostCacheSize": 16,
        "maxConcurrentRequests": 16,
        "maxQueuedRequests": 64,
        "hotswap": {"maxLoraRank": 8},
        "batching": {"maxBatchSize": 4, "batchWaitTimeoutS": 0.02},
        "limits": {"maxWidth": 128, "maxHeight": 128},
        "auth": {"enabled": False},
    }
    with serve_app(ray_cluster, services_env, APP_NAME, args) as url:
        yield url
