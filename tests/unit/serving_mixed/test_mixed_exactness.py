"""A mixed batch gives every request the image it gets alone (engine path and diffusers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.fixtures.serving import png_pixels

LEVEL = 1.0 / 255 + 1e-6  # one 8-bit level: two float images 1e-5 apart may round apart
FLOAT_TOLERANCE = 1e-4


def _solo_pixels(engine: Any, job: Any) -> np.ndarray:
    output = engine.generate(job)
    assert output.error is None, output.error
    return png_pixels(output.images[0])


def _four_jobs(make_job: Callable[..., Any]) -> list[Any]:
    """4 requests over 3 adapters (lora0, lora1, ti-cat); one has none; one combines two."""
    return [
        make_job([("lora0", 1.0)], seed=11),
        make_job([("lora1", 0.7), ("ti-cat", 1.0)], prompt="a photo of <cat-toy>", seed=12),
        make_job(prompt="a photo of <cat-toy>", seed=13),
        make_job([("lora0", 0.5), ("lora1", 1.0)], negative_prompt="blurry", seed=14),
    ]


def test_mixed_batch_of_four_equals_each_request_alone(
    mixed_engine: Any, make_job: Callable[..., Any]
) -> None:
    jobs = _four_jobs(make_job)
    batch = mixed_engine.run_requests(jobs)
    assert [r.output.error for r in batch] == [None] * 4
    mixed = [png_pixels(r.output.images[0]) for r in batch]
    solo = [_solo_pixels(mixed_engine, job) for job in jobs]
    for position, (ours, alone) in enumerate(zip(mixed, solo, strict=True)):
        assert np.abs(ours - alone).max() <= LEVEL, f"request {position} differs from its solo run"
    # ... and the four images really are four different images (adapters, seeds, tokens)
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(mixed[i] - mixed[j]).mean() > 0.01, (i, j)


def test_mixed_floats_equal_diffusers_single_adapter_runs(
    mixed_engine: Any,
    make_job: Callable[..., Any],
    fresh_tiny_pipeline: Any,
    serving_adapters: dict[str, Path],
) -> None:
    jobs = _four_jobs(make_job)
    jobs[1] = make_job([("lora-te", 0.8)], seed=12)  # a text-encoder LoRA, routed per prompt
    batch = mixed_engine.run_requests(jobs)
    pipe = fresh_tiny_pipeline
    for name in ("lora0", "lora1", "lora-te"):
        pipe.load_lora_weights(str(serving_adapters[name]), adapter_name=name)
    for request in batch:
        job = request.job
        names = [resolved.name for resolved, _ in job.adapters]
        weights = [weight for _, weight in job.adapters]
        if names:
            pipe.enable_lora()
            pipe.set_adapters(names, weights)
        else:
            pipe.disable_lora()
        reference = pipe(
            prompt=[job.prompt],
            negative_prompt=[job.negative_prompt or ""],
            num_inference_steps=job.steps,
            width=job.width,
            height=job.height,
            generator=[torch.Generator().manual_seed(job.seed)],
            output_type="np",
        ).images[0]
        difference = float(np.abs(request.images[0] - reference).max())
        assert difference <= FLOAT_TOLERANCE, (names, difference)
