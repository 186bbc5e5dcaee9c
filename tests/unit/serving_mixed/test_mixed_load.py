"""Concurrent load over 8 adapters through the batch former, in-process: 0 errors, 0 mix-ups."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.fixtures.serving import png_pixels

LEVEL = 1.0 / 255 + 1e-6
PREFIX = "tuneforge_serving"
ADAPTERS = [f"lora{i}" for i in range(8)]


def _random_jobs(make_job: Callable[..., Any], count: int) -> list[Any]:
    """Seeded mix: no adapter, one LoRA, two weighted LoRAs, LoRA + TI token; distinct seeds."""
    rng = random.Random(8)
    jobs = []
    for index in range(count):
        kind = index % 4
        picked = rng.sample(ADAPTERS, 2)
        weight = rng.choice([0.5, 1.0, 1.5])
        if kind == 0:
            jobs.append(make_job(seed=1000 + index))
        elif kind == 1:
            jobs.append(make_job([(picked[0], weight)], seed=1000 + index))
        elif kind == 2:
            jobs.append(make_job([(picked[0], weight), (picked[1], 1.0)], seed=1000 + index))
        else:
            jobs.append(
                make_job(
                    [(picked[0], weight), ("ti-cat", 1.0)],
                    prompt="a photo of <cat-toy>",
                    seed=1000 + index,
                )
            )
    return jobs


def test_concurrent_mixed_requests_over_8_adapters_never_mix_up(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    from tuneforge_serving.batching import BatchedEngine

    mixing = BatchedEngine(mixed_engine)
    jobs = _random_jobs(make_job, 32)

    async def client(job: Any, delay: float) -> Any:
        await asyncio.sleep(delay)
        return await mixing.generate(job)

    async def main() -> list[Any]:
        delays = [0.0 if i < 16 else 0.05 * (i % 4) for i in range(len(jobs))]
        try:
            return await asyncio.gather(*(client(j, d) for j, d in zip(jobs, delays, strict=True)))
        finally:
            await mixing.close()

    outputs = asyncio.run(main())
    errors = [o.error for o in outputs if o.error is not None]
    assert errors == []
    # the requests really were mixed: batches of several requests over several adapters
    metrics = mixed_engine.mixing.metrics
    batches = metrics.value(f"{PREFIX}_mixed_batch_requests_count")
    assert metrics.value(f"{PREFIX}_mixed_batch_requests_sum") == len(jobs)
    assert batches < len(jobs) / 2
    calls = metrics.value(f"{PREFIX}_mixed_call_adapters_count")
    assert metrics.value(f"{PREFIX}_mixed_call_adapters_sum") > 2 * calls
    assert metrics.value(f"{PREFIX}_mixed_queue_seconds_count") == len(jobs)
    assert b"_mixed_queue_seconds_bucket" in mixing.render_metrics()
    # (read before the solo reference runs below, which are calls of their own)
    references = [mixed_engine.generate(job) for job in jobs]
    pixels = [png_pixels(o.images[0]) for o in outputs]
    solo = [png_pixels(r.images[0]) for r in references]
    mixed_up = [i for i in range(len(jobs)) if np.abs(pixels[i] - solo[i]).max() > LEVEL]
    assert mixed_up == []
    # the check has teeth: every request's reference image differs from every other one
    for i in range(len(jobs)):
        for j in range(i + 1, len(jobs)):
            assert np.abs(solo[i] - solo[j]).max() > 10 * LEVEL, (i, j)
