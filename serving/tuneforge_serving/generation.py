"""The pieces of one pipeline call: a request with its staged adapters, the call, the PNGs.

`ServingEngine.run_requests` is the one generation path; these helpers hold what it needs
that is not engine state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from tuneforge_serving.adapter_store import StagedAdapter
from tuneforge_serving.jobs import GenerationJob, GenerationOutput

LoraChoice = tuple[tuple[int, float], ...]
"""A sample's LoRAs as `(slot index, weight)` pairs; `()` is the base model."""


@dataclass
class StagedRequest:
    """A job with its staged adapters and, once run, its float images and output."""

    job: GenerationJob
    staged: list[StagedAdapter] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    output: GenerationOutput = field(default_factory=GenerationOutput)

    @property
    def lora_count(self) -> int:
        """How many of the request's adapters carry LoRA weights."""
        return sum(1 for staged in self.staged if staged.lora is not None)

    def lora_choice(self, slots: dict[Any, int]) -> LoraChoice:
        """The request's LoRAs as (slot, weight) pairs in request order (TI-only ones drop out).

        `slots` maps each staged adapter's key to the slot holding it.
        """
        return tuple(
            (slots[staged.key], float(weight))
            for staged, (_, weight) in zip(self.staged, self.job.adapters, strict=True)
            if staged.lora is not None
        )


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] as 8-bit pixels (round half to even)."""
    return (images * 255).round().clip(0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG encoding of 8-bit pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def call_pipeline(pipeline: Any, samples: list[tuple[GenerationJob, str, str]]) -> np.ndarray:
    """One pipeline call for (job, prompt, negative prompt) samples; float images in [0, 1].

    Images come in sample order, `num_images` per job, image i of a job seeded `seed + i`.
    The jobs share one shape key: steps, guidance scale and size come from the first.
    """
    prompts: list[str] = []
    negatives: list[str] = []
    generators: list[torch.Generator] = []
    for job, prompt, negative in samples:
        for image in range(job.num_images):
            prompts.append(prompt)
            negatives.append(negative)
            generators.append(torch.Generator("cpu").manual_seed(job.seed + image))
    first = samples[0][0]
    result = pipeline(
        prompt=prompts,
        negative_prompt=negatives,
        num_inference_steps=first.steps,
        guidance_scale=first.guidance_scale,
        width=first.width,
        height=first.height,
        generator=generators,
        output_type="np",
    )
    return np.asarray(result.images)


@dataclass
class PlannedCall:
    """Requests that run in one pipeline call."""

    requests: list[StagedRequest]
    mixed: bool = False
    """Planned by mixed batching: the requests may differ in their adapter choices (each
    sample routed to its own); otherwise they share one choice."""
