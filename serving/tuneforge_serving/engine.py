"""The serving core: one warm pipeline, staged adapters, slots, and generation. No Ray here.

`ServingEngine` is a plain class (the Ray Serve deployment is a thin wrapper around it),
so its behaviour is tested in-process. Thread-safe: staging runs concurrently, while
attaching adapters to slots and running the pipeline hold one lock.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from tuneforge.adapter import base_model_fingerprint
from tuneforge_serving.adapter_store import (
    AdapterKey,
    AdapterSource,
    AdapterStore,
    StagedAdapter,
    adapter_info,
    check_token_clash,
)
from tuneforge_serving.base_model import (
    load_pipeline,
    locate_base_model,
    pick_device,
    pick_dtype,
    pin_execution_device,
)
from tuneforge_serving.config import ServingConfig
from tuneforge_serving.embedding_slots import EmbeddingSlotBank
from tuneforge_serving.errors import LimitExceeded, ServingError
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.lora_slots import LoraSlotBank

log = logging.getLogger(__name__)

__all__ = [
    "EngineStats",
    "GenerationJob",
    "GenerationOutput",
    "ServingEngine",
    "call_pipeline",
    "png_bytes",
    "to_uint8",
]


@dataclass
class EngineStats:
    """Counters exported as metrics."""

    requests: int = 0
    images: int = 0
    slot_hits: int = 0
    slot_loads: int = 0
    slot_evictions: int = 0
    swap_seconds: float = 0.0
    inference_seconds: float = 0.0


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


class ServingEngine:
    """A warm StableDiffusionPipeline whose adapters are hot-swapped through slots."""

    def __init__(
        self, config: ServingConfig, source: AdapterSource, pipeline: Any | None = None
    ) -> None:
        self.config = config
        location = locate_base_model(config.base_model, config.cache_dir)
        self.device = pick_device(config.device)
        self.pipeline = (
            pin_execution_device(pipeline, self.device)
            if pipeline
            else load_pipeline(location, self.device, pick_dtype(config.dtype, self.device))
        )
        self.fingerprint = base_model_fingerprint(location)
        slots = config.adapter_lru_size
        hotswap = config.hotswap
        self.lora_slots = LoraSlotBank(
            {"unet": self.pipeline.unet, "text_encoder": self.pipeline.text_encoder},
            {
                "unet": hotswap.unet_target_modules,
                "text_encoder": hotswap.text_encoder_target_modules,
            },
            n_slots=slots,
            slot_rank=hotswap.max_lora_rank,
        )
        self.embedding_slots = EmbeddingSlotBank(
            self.pipeline.tokenizer, self.pipeline.text_encoder, slots, hotswap.max_ti_vectors
        )
        self.store = AdapterStore(
            source, config.cache_dir, config.host_cache_size, self.fingerprint
        )
        self._attached: OrderedDict[AdapterKey, int] = OrderedDict()
        self._free = list(range(slots - 1, -1, -1))
        self._checked: set[AdapterKey] = set()
        self._lock = threading.Lock()
        self.stats = EngineStats()

    # ------------------------------------------------------------------ adapters

    def stage(self, resolved: Any) -> StagedAdapter:
        """Host-memory copy of an adapter, checked against the slot contract (422 otherwise)."""
        staged = self.store.get(resolved)
        if staged.key not in self._checked:
            if staged.lora is not None:
                self.lora_slots.check(staged.lora, str(staged.key))
            if staged.embeddings is not None:
                self.embedding_slots.check(staged.embeddings, str(staged.key))
            self._checked.add(staged.key)
        return staged

    # Public seam for batch formers (issue 8: mixed-adapter batches). Hold `slot_lock`
    # around `attach` and the pipeline call that uses the returned slots.

    @property
    def slot_lock(self) -> threading.Lock:
        """Held while slots change and while the pipeline runs."""
        return self._lock

    def attach(self, adapters: list[StagedAdapter]) -> list[int]:
        """Slot indices holding `adapters`, copying in missing ones (hold `slot_lock`)."""
        wanted = {a.key for a in adapters}
        indices: list[int] = []
        for staged in adapters:
            index = self._attached.get(staged.key)
            if index is not None:
                self._attached.move_to_end(staged.key)
                self.stats.slot_hits += 1
                indices.append(index)
                continue
            if self._free:
                index = self._free.pop()
            else:
                victim = next(key for key in self._attached if key not in wanted)
                index = self._attached.pop(victim)
                self.stats.slot_evictions += 1
            if staged.lora is not None:
                self.lora_slots.write(index, staged.lora)
            else:
                self.lora_slots.clear(index)
            if staged.embeddings is not None:
                self.embedding_slots.write(index, staged.embeddings)
            else:
                self.embedding_slots.clear(index)
            self._attached[staged.key] = index
            self.stats.slot_loads += 1
            indices.append(index)
        return indices

    def attached(self) -> list[AdapterKey]:
        """Adapters in pipeline slots, least recently used first."""
        with self._lock:
            return list(self._attached)

    def prewarm(self, resolved: Any) -> dict[str, float]:
        """Stage an adapter and attach it to a slot ahead of traffic; returns timings (ms)."""
        start = time.perf_counter()
        staged = self.stage(resolved)
        staged_at = time.perf_counter()
        with self._lock:
            self.attach([staged])
        done = time.perf_counter()
        return {"stage_ms": (staged_at - start) * 1e3, "swap_ms": (done - staged_at) * 1e3}

    def switch(self, adapters: list[tuple[Any, float]]) -> float:
        """Make exactly `adapters` active (staging, attaching as needed); seconds the swap took.

        `generate` does this itself; it is public for prewarming a set and for benchmarks.
        """
        staged = [self.stage(resolved) for resolved, _ in adapters]
        with self._lock:
            start = time.perf_counter()
            indices = self.attach(staged)
            self.lora_slots.activate(list(zip(indices, [w for _, w in adapters], strict=True)))
            return time.perf_counter() - start

    # ------------------------------------------------------------------ generation

    def check_prompt(self, prompt: str) -> None:
        """LimitExceeded (422) when `prompt`, TI tokens expanded, exceeds maxPromptTokens."""
        limit = self.config.limits.max_prompt_tokens
        count = len(self.pipeline.tokenizer(prompt, truncation=False).input_ids)
        if count > limit:
            raise LimitExceeded(
                f"prompt is {count} tokens (textual-inversion tokens expanded); the limit is "
                f"{limit} (limits.maxPromptTokens): shorten the prompt"
            )

    def generate(self, job: GenerationJob) -> GenerationOutput:
        """Run one job (see `generate_group`)."""
        return self.generate_group([job])[0]

    def generate_group(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        """Run jobs that share one shape key in one pipeline call; errors come back per job."""
        if len({job.shape_key() for job in jobs}) != 1:
            raise ValueError("generate_group needs jobs with one shape key; group them first")
        start = time.perf_counter()
        try:
            staged = [self.stage(resolved) for resolved, _ in jobs[0].adapters]
            check_token_clash(staged)
        except ServingError as error:
            return [GenerationOutput(error=error.info()) for _ in jobs]
        staged_at = time.perf_counter()
        outputs = [GenerationOutput() for _ in jobs]
        with self._lock:
            locked_at = time.perf_counter()
            indices = self.attach(staged)
            weights = [weight for _, weight in jobs[0].adapters]
            self.lora_slots.activate(list(zip(indices, weights, strict=True)))
            swapped_at = time.perf_counter()
            runnable: list[int] = []
            samples: list[tuple[GenerationJob, str, str]] = []
            for position, job in enumerate(jobs):
                prompt = self.embedding_slots.rewrite(job.prompt, indices)
                negative = self.embedding_slots.rewrite(job.negative_prompt or "", indices)
                try:
                    self.check_prompt(prompt)
                    self.check_prompt(negative)
                except ServingError as error:
                    outputs[position].error = error.info()
                    continue
                runnable.append(position)
                samples.append((job, prompt, negative))
            arrays = list(to_uint8(call_pipeline(self.pipeline, samples))) if samples else []
            finished = time.perf_counter()
        swap_s, infer_s = swapped_at - locked_at, finished - swapped_at
        self.stats.swap_seconds += swap_s
        self.stats.inference_seconds += infer_s
        self.stats.requests += len(runnable)
        info = [adapter_info(s, w) for s, (_, w) in zip(staged, jobs[0].adapters, strict=True)]
        cursor = 0
        for position in runnable:
            job, output = jobs[position], outputs[position]
            output.images = [png_bytes(a) for a in arrays[cursor : cursor + job.num_images]]
            cursor += job.num_images
            self.stats.images += job.num_images
            output.seed = job.seed
            output.adapters = info
            output.timings = {
                "stage_ms": (staged_at - start) * 1e3,
                "queue_ms": (locked_at - staged_at) * 1e3,
                "swap_ms": swap_s * 1e3,
                "inference_ms": infer_s * 1e3,
            }
        return outputs
