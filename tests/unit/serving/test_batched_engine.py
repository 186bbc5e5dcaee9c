"""`BatchedEngine` with mixed batching off: batches share shape and adapter choice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.fixtures.serving import png_pixels

LEVELS = 1 / 255 + 1e-6  # docs/serving.md: batched is within one 8-bit level of solo


def test_concurrent_jobs_batch_by_choice_and_match_their_solo_images(
    engine: Any, make_job: Callable[..., Any]
) -> None:
    from tuneforge_serving.batching import BatchedEngine

    batches = BatchedEngine(engine)
    assert batches.former.key.__name__ == "choice_key"
    jobs = [
        make_job([("lora0", 1.0)], seed=1),
        make_job([("lora1", 1.0)], seed=2),
        make_job([("lora0", 1.0)], seed=3),
        make_job(seed=4),
    ]
    executed: list[int] = []
    original = batches.former.execute

    def recording(batch: list[Any]) -> list[Any]:
        executed.append(len(batch))
        return original(batch)

    batches.former.execute = recording

    async def main() -> list[Any]:
        try:
            return await asyncio.gather(*(batches.generate(job) for job in jobs))
        finally:
            await batches.close()

    outputs = asyncio.run(main())
    assert sorted(executed) == [1, 1, 2], "lora0's two jobs share a batch, the others not"
    for job, output in zip(jobs, outputs, strict=True):
        assert output.error is None
        alone = png_pixels(engine.generate(job).images[0])
        assert np.abs(png_pixels(output.images[0]) - alone).max() <= LEVELS
    assert batches.render_metrics() == b""
