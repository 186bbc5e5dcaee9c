"""Serving integration fixtures: adapters registered in the real MLflow (S3 artifacts) and
the Serve application running on the session's Ray cluster (private network namespace)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures._procs import LOOPBACK, free_port
from tests.fixtures.serving import make_lora_adapter, register_adapter

APP_NAME = "tuneforge-itest"
READY_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def registry_settings(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Settings pointing at the session's `mlflow server` and S3 (no environment needed)."""
    from tuneforge.settings import Settings

    return Settings(
        home=tmp_path_factory.mktemp("serving-home"),
        s3_endpoint=mlflow_server.s3.url,
        s3_access_key=mlflow_server.s3.access_key,
        s3_secret_key=mlflow_server.s3.secret_key,
        mlflow_tracking_uri=mlflow_server.tracking_uri,
    )


@pytest.fixture(scope="module")
def registered(
    registry_settings: Any,
    serving_adapters: dict[str, Path],
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Test adapters registered under unique names: local name -> registered name.

    Also `wrong-base`: a LoRA whose manifest names another base model's fingerprint.
    """
    prefix = f"it-{uuid.uuid4().hex[:6]}"
    names: dict[str, str] = {}
    folders = dict(serving_adapters)
    folders["wrong-base"] = make_lora_adapter(
        tiny_model_dir,
        tmp_path_factory.mktemp("wrong") / "a",
        seed=5,
        fingerprint="feedfacefeedface",
    )
    for local, folder in folders.items():
        names[local] = f"{prefix}-{local}"
        register_adapter(folder, names[local], alias="prod", settings=registry_settings)
    return names


@pytest.fixture(scope="module")
def serve_url(
    services_env: dict[str, str],
    ray_cluster: Any,
    registered: dict[str, str],
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The serving app via `serve.run(build_app(args))`; yields its base URL once /readyz is 200."""
    from ray import serve
    from tuneforge_serving.app import build_app

    ray_cluster.connect(env=services_env)
    port = free_port()
    serve.start(http_options={"host": LOOPBACK, "port": port})
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
        "auth": {"tokenEnv": None},
    }
    url = f"http://{LOOPBACK}:{port}"
    try:
        serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"serving app not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(1)
        yield url
    finally:
        serve.delete(APP_NAME)
        serve.shutdown()
