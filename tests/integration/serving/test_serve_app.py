"""The Serve application end to end: real Ray Serve, MLflow registry, S3 artifacts, tiny model."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.integration

BASE = {"prompt": "a photo of <cat-toy>", "steps": 3, "width": 64, "height": 64, "seed": 21}


def _png(answer: httpx.Response) -> bytes:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    return answer.content


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64) / 255


def _post(url: str, body: dict[str, Any], png: bool = True) -> httpx.Response:
    headers = {"Accept": "image/png"} if png else {}
    return httpx.post(f"{url}/v1/generate", json=body, headers=headers, timeout=120)


def test_adapters_change_the_image_and_seeds_repeat(
    serve_url: str, registered: dict[str, str]
) -> None:
    lora = [{"name": registered["lora0"], "alias": "prod"}]
    two = [
        {"name": registered["lora1"], "weight": 0.7},
        {"name": registered["lora2"], "weight": 0.4},
    ]
    ti = [{"name": registered["ti-cat"], "version": 1}]
    images = {
        "base": _png(_post(serve_url, BASE)),
        "lora": _png(_post(serve_url, {**BASE, "adapters": lora})),
        "ti": _png(_post(serve_url, {**BASE, "adapters": ti})),
        "two": _png(_post(serve_url, {**BASE, "adapters": two})),
    }
    assert len(set(images.values())) == 4
    for name in ("lora", "ti", "two"):
        assert np.abs(_pixels(images[name]) - _pixels(images["base"])).mean() > 0.005, name
    assert _png(_post(serve_url, {**BASE, "adapters": two})) == images["two"]
    assert _png(_post(serve_url, BASE)) == images["base"]
    payload = _post(serve_url, {**BASE, "adapters": lora}, png=False).json()
    assert payload["adapters"][0]["version"] == 1 and payload["seed"] == 21
    assert base64.b64decode(payload["images"][0]) == images["lora"]


def test_errors_through_serve(serve_url: str, registered: dict[str, str]) -> None:
    missing = _post(serve_url, {**BASE, "adapters": [{"name": "no-such-adapter"}]})
    assert missing.status_code == 404 and missing.json()["detail"] == (
        "adapter 'no-such-adapter' not found: no registered model 'no-such-adapter' with any "
        "version; GET /v1/adapters lists the adapters this server can serve"
    )
    wrong = _post(serve_url, {**BASE, "adapters": [{"name": registered["wrong-base"]}]})
    assert wrong.status_code == 422 and "fingerprint" in wrong.text
    assert "use an adapter trained on this server's base model" in wrong.text
    big = _post(serve_url, {**BASE, "width": 1024})
    assert big.status_code == 422 and "width=1024" in big.text
    long_prompt = _post(serve_url, {**BASE, "prompt": "cat " * 90})
    assert long_prompt.status_code == 422 and "maxPromptTokens" in long_prompt.text


def test_missing_or_foreign_multiplex_id_is_not_an_error(
    serve_url: str, registered: dict[str, str]
) -> None:
    from ray import serve

    from tests.integration.serving.conftest import APP_NAME
    from tuneforge.contract import AdapterRef
    from tuneforge.registry import AdapterRegistry
    from tuneforge_serving.jobs import GenerationJob

    handle = serve.get_deployment_handle("sd15", app_name=APP_NAME)
    resolved = AdapterRegistry().resolve(AdapterRef(registered["lora3"], 1))
    job = GenerationJob(
        prompt="a cat", adapters=[(resolved, 1.0)], steps=2, width=64, height=64, seed=3
    )
    plain = handle.generate.remote(job).result(timeout_s=120)
    assert plain.error is None and len(plain.images) == 1
    foreign = handle.options(multiplexed_model_id="some/other,set").generate.remote(job)
    assert foreign.result(timeout_s=120).images == plain.images
    over_http = httpx.post(
        f"{serve_url}/v1/generate",
        json={**BASE, "prompt": "a cat"},
        headers={"serve_multiplexed_model_id": "garbage"},
        timeout=120,
    )
    assert over_http.status_code == 200


def test_adapter_listing_and_prewarm(serve_url: str, registered: dict[str, str]) -> None:
    name = registered["lora4"]
    loaded = httpx.post(
        f"{serve_url}/v1/adapters/{name}/load", params={"alias": "prod"}, timeout=120
    )
    assert loaded.status_code == 200, loaded.text
    listing = httpx.get(f"{serve_url}/v1/adapters", timeout=60).json()["adapters"]
    entry = next(a for a in listing if a["name"] == name)
    assert entry["aliases"] == {"prod": 1} and entry["loadedVersions"] == [1]
    metrics = httpx.get(f"{serve_url}/metrics", timeout=30).text
    assert "tuneforge_serving_requests_total" in metrics


def test_32_concurrent_requests_over_8_adapters(serve_url: str, registered: dict[str, str]) -> None:
    adapters = [registered[f"lora{i}"] for i in range(6)] + [
        registered["ti-cat"],
        registered["ti-dog"],
    ]
    prompt = "a <cat-toy> and a <dog-toy>"

    def body(name: str) -> dict[str, Any]:
        return {**BASE, "prompt": prompt, "adapters": [{"name": name}]}

    references = {name: _pixels(_png(_post(serve_url, body(name)))) for name in adapters}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=serve_url, timeout=300) as client:
            calls = [
                client.post(
                    "/v1/generate", json=body(adapters[i % 8]), headers={"Accept": "image/png"}
                )
                for i in range(32)
            ]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * 32
    for index, answer in enumerate(answers):
        own = adapters[index % 8]
        pixels = _pixels(answer.content)
        distances = {name: np.abs(pixels - ref).max() for name, ref in references.items()}
        assert min(distances, key=lambda n: distances[n]) == own, f"request {index} mixed up"
        assert distances[own] <= 1 / 255 + 1e-6, f"request {index} differs from {own} alone"
