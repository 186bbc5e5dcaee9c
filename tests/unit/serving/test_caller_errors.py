"""Errors as an API caller reads them, over the real registry code (embedded MLflow store).

Each says once what is wrong and what the caller can change; none names the server's
internals (the MLflow address, artifact paths) or a CLI command; the internal detail is
logged on the server instead.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.serving import build_engine, register_adapter
from tuneforge.settings import Settings

SMALL = {"prompt": "a photo of a cat", "steps": 2, "width": 64, "height": 64, "seed": 5}
LIST_HINT = "GET /v1/adapters lists the adapters this server can serve"


def _client(engine: Any, registry: Any) -> TestClient:
    from tuneforge_serving.api import ApiService, create_api
    from tuneforge_serving.backends import LocalBackend

    service = ApiService(engine.config, {"sd15": LocalBackend(engine)}, registry)
    return TestClient(create_api(service))


def _assert_for_the_caller(detail: str, *internals: str) -> None:
    for internal in (*internals, "sqlite", "tuneforge adapters", "mlflow.db", "`tuneforge"):
        assert internal not in detail, f"{internal!r} shown to the caller: {detail}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("errors-home")


@pytest.fixture(scope="module")
def registry(home: Path, serving_adapters: dict[str, Path]) -> Any:
    """The embedded registry (SQLite under home) with `lora0` as `err-lora` v1 @prod."""
    from tuneforge.registry import AdapterRegistry

    settings = Settings(home=home)
    register_adapter(serving_adapters["lora0"], "err-lora", alias="prod", settings=settings)
    return AdapterRegistry(settings)


@pytest.fixture(scope="module")
def client(
    tiny_model_dir: Path, registry: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    engine = build_engine(tiny_model_dir, registry, tmp_path_factory.mktemp("errors-cache"), 3)
    with _client(engine, registry) as test_client:
        yield test_client


def _generate(client: TestClient, adapter: dict[str, Any]) -> Any:
    return client.post("/v1/generate", json={**SMALL, "adapters": [adapter]})


@pytest.mark.parametrize(
    ("adapter", "reference", "missing"),
    [
        ({"name": "ghost", "alias": "prod"}, "ghost@prod", "with alias 'prod'"),
        ({"name": "err-lora", "alias": "staging"}, "err-lora@staging", "with alias 'staging'"),
        ({"name": "err-lora", "version": 7}, "err-lora/7", "with version 7"),
        ({"name": "ghost"}, "ghost", "with any version"),
    ],
)
def test_an_unknown_adapter_is_said_once_with_where_to_look(
    client: TestClient,
    registry: Any,
    caplog: pytest.LogCaptureFixture,
    adapter: dict[str, Any],
    reference: str,
    missing: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="tuneforge_serving"):
        answer = _generate(client, adapter)
    assert answer.status_code == 404, answer.text
    detail = answer.json()["detail"]
    name = adapter["name"]
    assert detail == (
        f"adapter '{reference}' not found: no registered model '{name}' {missing}; {LIST_HINT}"
    )
    assert detail.count("not found") == 1
    _assert_for_the_caller(detail, registry.tracking_uri)
    assert registry.tracking_uri in caplog.text, "the internal detail is logged on the server"


def test_a_known_adapter_still_generates(client: TestClient) -> None:
    answer = _generate(client, {"name": "err-lora", "alias": "prod"})
    assert answer.status_code == 200, answer.text


def test_a_registry_that_does_not_answer_is_503_without_its_address(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tuneforge.registry import AdapterRegistry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"127.0.0.1:{port}"
    registry = AdapterRegistry(Settings(home=tmp_path, mlflow_tracking_uri=f"http://{address}"))
    engine = build_engine(tiny_model_dir, registry, tmp_path / "cache", 3)
    with _client(engine, registry) as client, caplog.at_level(logging.WARNING):
        answer = _generate(client, {"name": "err-lora", "alias": "prod"})
        listing = client.get("/v1/adapters")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["detail"] == (
        "the adapter registry did not answer while resolving 'err-lora@prod'; retry later"
    )
    assert listing.status_code == 503, listing.text
    assert listing.json()["detail"] == "the adapter registry did not answer; retry later"
    for detail in (answer.json()["detail"], listing.json()["detail"]):
        _assert_for_the_caller(detail, address, str(port))
    assert address in caplog.text


def _registered_folder(registry: Any, reference: str) -> Path:
    from tuneforge.storage import local_path

    folder = local_path(registry.resolve(reference).source)
    assert folder is not None and folder.is_dir()
    return folder


def test_artifacts_that_are_not_safetensors_are_422_without_paths(
    tiny_model_dir: Path,
    serving_adapters: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tuneforge.registry import AdapterRegistry

    settings = Settings(home=tmp_path / "home")
    register_adapter(serving_adapters["lora1"], "pickled", settings=settings)
    registry = AdapterRegistry(settings)
    folder = _registered_folder(registry, "pickled")
    (folder / "model.bin").write_bytes(b"not a safetensors file")
    engine = build_engine(tiny_model_dir, registry, tmp_path / "cache", 3)
    with _client(engine, registry) as client, caplog.at_level(logging.WARNING):
        answer = _generate(client, {"name": "pickled"})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("adapter pickled/1 cannot be served: its artifacts hold files")
    assert detail.endswith("ask for another version") and detail.count("pickled/1") == 1
    _assert_for_the_caller(detail, str(folder), str(tmp_path))
    assert "model.bin" in caplog.text and str(folder) in caplog.text


def test_artifacts_that_cannot_be_fetched_are_503_without_paths(
    tiny_model_dir: Path,
    serving_adapters: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shutil

    from tuneforge.registry import AdapterRegistry

    settings = Settings(home=tmp_path / "home")
    register_adapter(serving_adapters["lora2"], "vanished", settings=settings)
    registry = AdapterRegistry(settings)
    folder = _registered_folder(registry, "vanished")
    shutil.rmtree(folder)
    engine = build_engine(tiny_model_dir, registry, tmp_path / "cache", 3)
    with _client(engine, registry) as client, caplog.at_level(logging.WARNING):
        answer = _generate(client, {"name": "vanished"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"] == "adapter vanished/1 could not be fetched now; retry later"
    assert str(folder) in caplog.text
