"""Mixed-adapter batching through the Serve app over HTTP: real Ray Serve, MLflow, S3.

32 concurrent requests over 8 LoRAs (one, two weighted, none, LoRA + TI token) must all
answer 200 with the image each request gets alone from an in-process engine on the same
tiny model and adapter files, and the replica's metrics must show multi-request batches.
"""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fixtures.serving import FolderAdapterSource
from tests.integration.serving_mixed.conftest import MIXED_APP_NAME

pytestmark = pytest.mark.integration

TOLERANCE = 3 / 255  # another process (Serve replica) may round a few pixels apart
ADAPTERS = [f"lora{i}" for i in range(8)]


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64) / 255


def _requests(count: int) -> list[dict[str, Any]]:
    """Seeded mix of request specs: local adapter names with weights, prompt, seed."""
    rng = random.Random(8)
    specs = []
    for index in range(count):
        first, second = rng.sample(ADAPTERS, 2)
        weight = rng.choice([0.5, 1.0, 1.5])
        adapters = [
            [],
            [(first, weight)],
            [(first, weight), (second, 1.0)],
            [(first, weight), ("ti-cat", 1.0)],
        ][index % 4]
        prompt = "a photo of <cat-toy>" if index % 4 == 3 else "a photo of a cat"
        specs.append({"adapters": adapters, "prompt": prompt, "seed": 500 + index})
    return specs


def _body(spec: dict[str, Any], registered: dict[str, str]) -> dict[str, Any]:
    return {
        "prompt": spec["prompt"],
        "steps": 3,
        "width": 64,
        "height": 64,
        "seed": spec["seed"],
        "adapters": [{"name": registered[n], "weight": w} for n, w in spec["adapters"]],
    }


def _references(
    specs: list[dict[str, Any]], model_dir: Path, folders: dict[str, Path], cache: Path
) -> list[np.ndarray]:
    """Each request alone, on an in-process engine over the same adapter files."""
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.jobs import GenerationJob

    source = FolderAdapterSource()
    for name, folder in folders.items():
        source.add(name, folder)
    config = ServingConfig(
        base_model=str(model_dir), cache_dir=cache, adapter_lru_size=4, hotswap={"maxLoraRank": 8}
    )
    engine = ServingEngine(config, source)
    images = []
    for spec in specs:
        job = GenerationJob(
            prompt=spec["prompt"],
            adapters=[(source.resolve(n), w) for n, w in spec["adapters"]],
            steps=3,
            width=64,
            height=64,
            seed=spec["seed"],
        )
        output = engine.generate(job)
        assert output.error is None, output.error
        images.append(_pixels(output.images[0]))
    return images


def test_32_concurrent_mixed_requests_over_8_adapters_over_http(
    mixed_serve_url: str,
    registered: dict[str, str],
    tiny_model_dir: Path,
    serving_adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    from ray import serve

    specs = _requests(32)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=mixed_serve_url, timeout=300) as client:
            calls = [
                client.post(
                    "/v1/generate",
                    json=_body(spec, registered),
                    headers={"Accept": "image/png"},
                )
                for spec in specs
            ]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * len(specs), [
        a.text for a in answers if a.status_code != 200
    ]
    references = _references(specs, tiny_model_dir, serving_adapters, tmp_path)
    for index, answer in enumerate(answers):
        pixels = _pixels(answer.content)
        distances = [float(np.abs(pixels - ref).max()) for ref in references]
        assert int(np.argmin(distances)) == index, f"request {index} got another's image"
        assert distances[index] <= TOLERANCE, f"request {index} differs from its solo run"

    handle = serve.get_deployment_handle("sd15", app_name=MIXED_APP_NAME)
    metrics = handle.mixed_metrics.remote().result(timeout_s=60).decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line and not line.startswith("#")
    }
    formed = values["tuneforge_serving_mixed_batch_requests_count"]
    assert values["tuneforge_serving_mixed_batch_requests_sum"] == len(specs)
    assert formed < len(specs), "no batch held more than one request"
    assert (
        values["tuneforge_serving_mixed_call_adapters_sum"]
        > values["tuneforge_serving_mixed_call_adapters_count"]
    ), "no pipeline call mixed several adapters"
