"""One mixed-adapter pipeline call for requests that share a shape but not their adapters.

`MixedBatchRunner.run(jobs)` stages every request's adapters, attaches the union to the
engine's slots (splitting the batch when the union exceeds the slots), gives each
sample its own LoRA set through peft's per-sample path (`AdapterMixer` + `SampleRouter`),
rewrites each prompt with its own textual-inversion tokens, seeds each sample with its
own generator, and returns one `GenerationOutput` per request in order. Requests that
cannot be mixed run through the engine's own single-set path (`Fallback`, counted).
Errors come back per request as data, never raised.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from tuneforge_serving.adapter_store import (
    AdapterKey,
    StagedAdapter,
    adapter_info,
    check_token_clash,
)
from tuneforge_serving.engine import ServingEngine, call_pipeline, png_bytes, to_uint8
from tuneforge_serving.errors import ErrorInfo, ServingError
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.mixed.config import MixedBatchingConfig
from tuneforge_serving.mixed.metrics import MixedBatchMetrics
from tuneforge_serving.mixed.mixes import AdapterMixer, LoraChoice
from tuneforge_serving.mixed.plan import Fallback, shape_key, split_for_slots
from tuneforge_serving.mixed.routing import SampleRouter

log = logging.getLogger(__name__)


@dataclass
class _Request:
    """A job with its staged adapters and, once run, its float images."""

    job: GenerationJob
    staged: list[StagedAdapter]
    images: list[np.ndarray] = field(default_factory=list)
    output: GenerationOutput = field(default_factory=GenerationOutput)


class MixedBatchRunner:
    """Runs batches of shape-compatible jobs on a ServingEngine, one adapter set per sample."""

    def __init__(
        self,
        engine: ServingEngine,
        config: MixedBatchingConfig | None = None,
        metrics: MixedBatchMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or MixedBatchingConfig()
        self.metrics = metrics or MixedBatchMetrics()
        self.router = SampleRouter(engine.lora_slots.layers.values())
        self.mixer = AdapterMixer(
            engine.lora_slots.layers,
            engine.lora_slots.slot_rank,
            engine.lora_slots.scale,
            self.config.max_combined_loras,
        )

    # ------------------------------------------------------------------ planning

    def _fallback_reason(self, request: _Request) -> Fallback | None:
        loras = sum(1 for staged in request.staged if staged.lora is not None)
        if loras and self.router.any_merged():
            return Fallback.FUSED
        if loras > self.config.max_combined_loras:
            return Fallback.TOO_MANY_LORAS
        return None

    def run(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        """One output per job, in order; jobs must share `plan.shape_key`."""
        return [request.output for request in self.run_requests(jobs)]

    def run_requests(self, jobs: list[GenerationJob]) -> list[_Request]:
        """Like `run`, keeping each request's float images (for exactness checks)."""
        if len({shape_key(job) for job in jobs}) > 1:
            raise ValueError("a mixed batch needs jobs with one shape key; group them first")
        start = time.perf_counter()
        requests: list[_Request] = []
        for job in jobs:
            request = _Request(job, [])
            try:
                request.staged = [self.engine.stage(resolved) for resolved, _ in job.adapters]
                check_token_clash(request.staged)
            except ServingError as error:
                request.output.error = error.info()
            requests.append(request)
        stage_ms = (time.perf_counter() - start) * 1e3
        mixable: list[_Request] = []
        for request in requests:
            if request.output.error is not None:
                continue
            reason = self._fallback_reason(request)
            if reason is None:
                mixable.append(request)
                continue
            self.metrics.fallbacks.labels(reason.value).inc()
            request.output = self.engine.generate(request.job)
        groups = split_for_slots(
            [frozenset(s.key for s in request.staged) for request in mixable],
            [request.job.num_images for request in mixable],
            self.engine.lora_slots.n_slots,
            self.config.max_batch_images,
        )
        if len(groups) > 1:
            self.metrics.slot_splits.inc(len(groups) - 1)
        for group in groups:
            members = [mixable[position] for position in group]
            try:
                self._run_group(members, stage_ms)
            except Exception as error:  # noqa: BLE001 - answer every caller, never hang
                log.exception("Mixed batch failed", extra={"requests": len(members)})
                failure = ErrorInfo(status=500, detail=f"generation failed: {error}", kind="Error")
                for request in members:
                    request.output = GenerationOutput(error=failure)
        return requests

    # ------------------------------------------------------------------ one call

    def _run_group(self, requests: list[_Request], stage_ms: float) -> None:
        """Attach the group's adapters, route samples, run one pipeline call, split results."""
        union: dict[AdapterKey, StagedAdapter] = {}
        for request in requests:
            for staged in request.staged:
                union.setdefault(staged.key, staged)
        waited = time.perf_counter()
        with self.engine.slot_lock:
            locked = time.perf_counter()
            slots = dict(zip(union, self.engine.attach(list(union.values())), strict=True))
            runnable: list[_Request] = []
            samples: list[tuple[GenerationJob, str, str]] = []
            choices: list[LoraChoice] = []
            for request in requests:
                indices = [slots[staged.key] for staged in request.staged]
                bank = self.engine.embedding_slots
                prompt = bank.rewrite(request.job.prompt, indices)
                negative = bank.rewrite(request.job.negative_prompt or "", indices)
                try:
                    self.engine.check_prompt(prompt)
                    self.engine.check_prompt(negative)
                except ServingError as error:
                    request.output.error = error.info()
                    continue
                runnable.append(request)
                samples.append((request.job, prompt, negative))
                choices.append(self._choice(request, slots))
            if not runnable:
                return
            names = self.mixer.prepare(choices)
            self._mount_layers_of({index for choice in choices for index, _ in choice})
            swapped = time.perf_counter()
            sample_names = [
                name
                for request, name in zip(runnable, names, strict=True)
                for _ in range(request.job.num_images)
            ]
            with self.router.route(sample_names):
                arrays = call_pipeline(self.engine.pipeline, samples)
            finished = time.perf_counter()
        self._finish(runnable, arrays, len(union), stage_ms, locked - waited)
        stats = self.engine.stats
        stats.swap_seconds += swapped - locked
        stats.inference_seconds += finished - swapped
        for request in runnable:
            request.output.timings.update(
                swap_ms=(swapped - locked) * 1e3, inference_ms=(finished - swapped) * 1e3
            )

    @staticmethod
    def _choice(request: _Request, slots: dict[AdapterKey, int]) -> LoraChoice:
        """The request's LoRAs as sorted (slot, weight) pairs (TI-only adapters drop out)."""
        pairs = [
            (slots[staged.key], float(weight))
            for staged, (_, weight) in zip(request.staged, request.job.adapters, strict=True)
            if staged.lora is not None
        ]
        return tuple(sorted(pairs))

    def _mount_layers_of(self, slots: set[int]) -> None:
        """Put the LoRA layers that any of `slots` covers in the forward path (hold the lock).

        Activating the slots does that (the engine bypasses layers no active slot covers);
        which slots are "active" does not matter to the per-sample path, which uses the
        names it is given. Layers none of them covers stay plain: every sample's delta is
        zero there anyway.
        """
        self.engine.lora_slots.activate([(index, 1.0) for index in sorted(slots)])

    def _finish(
        self,
        requests: list[_Request],
        arrays: np.ndarray,
        adapters: int,
        stage_ms: float,
        lock_wait_s: float,
    ) -> None:
        """Split the call's images back to the requests and record what happened."""
        self.metrics.call_images.observe(len(arrays))
        self.metrics.call_adapters.observe(adapters)
        cursor = 0
        for request in requests:
            job = request.job
            request.images = [arrays[cursor + i] for i in range(job.num_images)]
            cursor += job.num_images
            output = request.output
            output.images = [png_bytes(to_uint8(image)) for image in request.images]
            output.seed = job.seed
            output.adapters = [
                adapter_info(staged, weight)
                for staged, (_, weight) in zip(request.staged, job.adapters, strict=True)
            ]
            output.timings = {"stage_ms": stage_ms, "queue_ms": lock_wait_s * 1e3}
            self.engine.stats.requests += 1
            self.engine.stats.images += job.num_images
