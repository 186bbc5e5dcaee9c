"""The HTTP API in-process (FastAPI + LocalBackend, no Ray): answers, errors, auth, limits."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.fixtures.serving import png_pixels

SMALL = {"prompt": "a photo of a cat", "steps": 2, "width": 64, "height": 64, "seed": 5}


def _api(engine: Any, source: Any, **overrides: Any) -> Any:
    from tuneforge_serving.api import ApiService, create_api
    from tuneforge_serving.backends import LocalBackend

    values: dict[str, Any] = {
        "base_model": engine.config.base_model,
        "adapter_lru_size": 3,
        "limits": {"max_width": 128, "max_height": 128, "max_steps": 20, "max_num_images": 2},
    }
    values.update(overrides)
    token = values.pop("token", None)
    config = type(engine.config).model_validate(values)
    return create_api(ApiService(config, {"sd15": LocalBackend(engine)}, source, token))


@pytest.fixture(scope="module")
def client(engine: Any, folder_source: Any) -> Iterator[TestClient]:
    with TestClient(_api(engine, folder_source)) as test_client:
        yield test_client


def test_generate_json_reports_versions_seed_and_timings(client: TestClient) -> None:
    body = {
        **SMALL,
        "adapters": [{"name": "lora0", "weight": 0.8}, {"name": "ti-cat", "version": 1}],
    }
    answer = client.post("/v1/generate", json=body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["seed"] == 5 and len(payload["images"]) == 1
    assert [(a["name"], a["version"], a["weight"]) for a in payload["adapters"]] == [
        ("lora0", 1, 0.8),
        ("ti-cat", 1, 1.0),
    ]
    assert payload["adapters"][1]["tokens"] == ["<cat-toy>"]
    assert payload["timings"]["inferenceMs"] > 0
    png = base64.b64decode(payload["images"][0])
    assert png.startswith(b"\x89PNG") and png_pixels(png).shape == (64, 64, 3)


def test_png_response_equals_json_image(client: TestClient) -> None:
    body = {**SMALL, "adapters": [{"name": "lora1"}]}
    raw = client.post("/v1/generate", json=body, headers={"Accept": "image/png"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert raw.headers["x-adapters"] == "lora1/1" and raw.headers["x-seed"] == "5"
    as_json = client.post("/v1/generate", json=body).json()
    assert base64.b64decode(as_json["images"][0]) == raw.content


def test_unknown_adapter_is_404_naming_it(client: TestClient) -> None:
    answer = client.post(
        "/v1/generate", json={**SMALL, "adapters": [{"name": "nope", "version": 3}]}
    )
    assert answer.status_code == 404
    assert "nope/3" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"width": 256}, "width=256"),
        ({"height": 60}, "multiple of 8"),
        ({"steps": 21}, "steps=21"),
        ({"numImages": 3}, "numImages=3"),
        ({"prompt": "cat " * 90}, "maxPromptTokens"),
        ({"adapters": [{"name": f"lora{i}"} for i in range(4)]}, "adapters=4"),
        ({"adapters": [{"name": "lora0"}, {"name": "lora0"}]}, "once per request"),
        (
            {"adapters": [{"name": "lora0", "version": 1, "alias": "prod"}]},
            "either version or alias",
        ),
        ({"guidanceScale": 99}, "guidanceScale"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_bad_requests_are_422_naming_the_field(
    client: TestClient, change: dict[str, Any], needle: str
) -> None:
    answer = client.post("/v1/generate", json={**SMALL, **change})
    assert answer.status_code == 422, answer.text
    assert needle in answer.text


def test_png_of_several_images_is_refused(client: TestClient) -> None:
    answer = client.post(
        "/v1/generate", json={**SMALL, "numImages": 2}, headers={"Accept": "image/png"}
    )
    assert answer.status_code == 422


def test_adapter_listing_and_prewarm(client: TestClient) -> None:
    loaded = client.post("/v1/adapters/lora9/load", params={"version": 1})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["attached"] is True
    listing = {a["name"]: a for a in client.get("/v1/adapters").json()["adapters"]}
    assert listing["lora9"]["loadedVersions"] == [1]
    assert listing["lora3"]["latestVersion"] == 1
    assert client.post("/v1/adapters/missing/load").status_code == 404


def test_health_readiness_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True}
    client.post("/v1/generate", json=SMALL)
    metrics = client.get("/metrics").text
    assert 'tuneforge_serving_requests_total{route="generate",status="200"}' in metrics
    assert "tuneforge_serving_adapter_swap_seconds_bucket" in metrics
    schema = client.get("/openapi.json").json()
    assert "/v1/generate" in schema["paths"] and "/v1/adapters/{name}/load" in schema["paths"]


def test_bearer_token_auth(engine: Any, folder_source: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    from tuneforge_serving.config import AuthConfig

    token = AuthConfig(token_file=token_file).load_token()
    with TestClient(_api(engine, folder_source, token=token)) as api:
        assert api.post("/v1/generate", json=SMALL).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert api.post("/v1/generate", json=SMALL, headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert api.post("/v1/generate", json=SMALL, headers=right).status_code == 200
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 200
        for path in ("/metrics", "/docs", "/openapi.json", "/v1/adapters"):
            assert api.get(path).status_code == 401, path
            assert api.get(path, headers=right).status_code == 200, path


def test_auth_is_on_by_default_and_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge_serving.config import AuthConfig, ServingConfig

    monkeypatch.delenv("TUNEFORGE_SERVING_TOKEN", raising=False)
    config = ServingConfig.model_validate({"base_model": str(tmp_path)})
    with pytest.raises(ValueError, match="set TUNEFORGE_SERVING_TOKEN or set auth.tokenFile"):
        config.auth.load_token()
    with pytest.raises(ValueError, match="auth.enabled: false"):
        AuthConfig(token_env=None).load_token()
    monkeypatch.setenv("TUNEFORGE_SERVING_TOKEN", "from-env")
    assert config.auth.load_token() == "from-env"
    disabled = ServingConfig.model_validate(
        {"base_model": str(tmp_path), "auth": {"enabled": False}}
    )
    assert disabled.auth.load_token() is None


def test_overload_is_429_and_timeout_is_504(engine: Any, folder_source: Any) -> None:
    app = _api(engine, folder_source, max_concurrent_requests=1, max_queued_requests=0)

    async def two_at_once() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            slow = {**SMALL, "steps": 15}
            answers = await asyncio.gather(
                api.post("/v1/generate", json=slow), api.post("/v1/generate", json=SMALL)
            )
        return [a.status_code for a in answers]

    # whichever the app admits first holds the only place; the other is refused
    assert sorted(asyncio.run(two_at_once())) == [200, 429]
    with TestClient(_api(engine, folder_source, request_timeout_s=0.01)) as api:
        answer = api.post("/v1/generate", json={**SMALL, "steps": 15})
        assert answer.status_code == 504
