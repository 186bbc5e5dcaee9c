"""The serving core: one warm pipeline, staged adapters, slots, and generation. No Ray here.

`ServingEngine` is a plain class (the Ray Serve deployment is a thin wrapper around it),
so its behaviour is tested in-process. Thread-safe: staging runs concurrently, while
attaching adapters to slots and running the pipeline hold one lock.

Generation has one path, `run_requests`: stage each request's adapters, plan the batch
into pipeline calls, and per call attach the adapters, rewrite the prompts, check them,
run the pipeline, encode the images and count. A call whose requests share one adapter
choice activates that choice on the slots; with mixed batching on (`SampleMixing`), a
call may hold different choices, each sample routed to its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from tuneforge.base_fingerprint import base_model_fingerprint
from tuneforge.contract import AdapterRef
from tuneforge_serving.adapter_store import (
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
from tuneforge_serving.errors import AdapterRejected, ErrorInfo, LimitExceeded, ServingError
from tuneforge_serving.generation import (
    LoraChoice,
    PlannedCall,
    StagedRequest,
    call_pipeline,
    png_bytes,
    to_uint8,
)
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.lora_slots import LoraSlotBank, bytes_per_rank, slot_layer_paths
from tuneforge_serving.mixed.metrics import MixedBatchMetrics
from tuneforge_serving.mixed.mixing import SampleMixing
from tuneforge_serving.slot_plan import MIB, plan_banks

log = logging.getLogger(__name__)


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


class ServingEngine:
    """A warm StableDiffusionPipeline whose adapters are hot-swapped through slots."""

    def __init__(
        self, config: ServingConfig, source: AdapterSource, pipeline: Any | None = None
    ) -> None:
        self.config = config
        location = locate_base_model(
            config.base_model,
            config.cache_dir,
            revision=config.base_model_revision,
            variant=config.base_model_variant,
        )
        self.device = pick_device(config.device)
        self.pipeline = (
            pin_execution_device(pipeline, self.device)
            if pipeline
            else load_pipeline(location, self.device, pick_dtype(config.dtype, self.device))
        )
        self.fingerprint = base_model_fingerprint(location.path)
        hotswap = config.hotswap
        components = {"unet": self.pipeline.unet, "text_encoder": self.pipeline.text_encoder}
        paths = {
            "unet": slot_layer_paths(self.pipeline.unet, hotswap.unet_target_modules),
            "text_encoder": slot_layer_paths(
                self.pipeline.text_encoder, hotswap.text_encoder_target_modules
            ),
        }
        budget = hotswap.memory_budget_mb
        self.slot_plan = plan_banks(
            hotswap.buckets(),
            config.adapter_lru_size,
            bytes_per_rank(components, paths, self.pipeline.unet.dtype),
            int(budget * MIB) if budget is not None else None,
        )
        """The slots this replica allocated: ranks per slot and their memory."""
        log.info("LoRA slots: %s", self.slot_plan.describe())
        self.lora_slots = LoraSlotBank(components, paths, self.slot_plan.ranks)
        slots = self.lora_slots.n_slots
        self.embedding_slots = EmbeddingSlotBank(
            self.pipeline.tokenizer, self.pipeline.text_encoder, slots, hotswap.max_ti_vectors
        )
        self.store = AdapterStore(
            source, config.cache_dir, config.host_cache_size, self.fingerprint
        )
        mixed = config.mixed_batching
        self.mixing = (
            SampleMixing(self.lora_slots, mixed, MixedBatchMetrics(config.metrics_prefix))
            if mixed.enabled
            else None
        )
        """Per-sample adapter routing when `mixedBatching.enabled`; None: one choice per call."""
        self._attached: OrderedDict[AdapterRef, int] = OrderedDict()
        self._free = set(range(slots))
        self._checked: set[AdapterRef] = set()
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

    @property
    def slot_count(self) -> int:
        """Adapters this replica keeps attached at once (its LoRA/TI slots, all buckets)."""
        return self.lora_slots.n_slots

    def check_slots(self, staged: list[StagedAdapter]) -> None:
        """422 when these adapters cannot be attached at once (too few large-enough slots)."""
        ranks = [adapter.rank for adapter in staged]
        if not self.lora_slots.fits(ranks):
            raise AdapterRejected(
                f"adapters of LoRA ranks {sorted(ranks, reverse=True)} together are over the "
                f"memory budget: this server's slots have ranks {self.lora_slots.ranks} "
                "(hotswap.rankBuckets within hotswap.memoryBudgetMB); use fewer large adapters "
                "in one request"
            )

    def _attach(self, adapters: list[StagedAdapter]) -> list[int]:
        """Slot indices holding `adapters`, copying in missing ones (hold the lock).

        Largest rank first, each into the smallest fitting slot: free first, else the least
        recently used one no adapter of this call holds.
        """
        wanted = {a.key for a in adapters}
        chosen: dict[AdapterRef, int] = {}
        for staged in sorted(adapters, key=lambda a: -a.rank):
            index = self._attached.get(staged.key)
            if index is not None:
                self._attached.move_to_end(staged.key)
                self.stats.slot_hits += 1
                chosen[staged.key] = index
                continue
            index = self._slot_for(staged, wanted)
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
            chosen[staged.key] = index
        return [chosen[staged.key] for staged in adapters]

    def _slot_for(self, staged: StagedAdapter, wanted: set[AdapterRef]) -> int:
        """A slot for `staged`: free, else evicted (the smallest fitting rank first)."""
        candidates = self.lora_slots.slots_for(staged.rank)
        for index in candidates:
            if index in self._free:
                self._free.discard(index)
                return index
        holders = {index: key for key, index in self._attached.items()}
        lru_order = {key: order for order, key in enumerate(self._attached)}
        for rank in sorted({self.lora_slots.ranks[i] for i in candidates}):
            evictable = [
                holders[i]
                for i in candidates
                if self.lora_slots.ranks[i] == rank and holders[i] not in wanted
            ]
            if evictable:
                victim = min(evictable, key=lambda key: lru_order[key])
                self.stats.slot_evictions += 1
                return self._attached.pop(victim)
        raise AdapterRejected(
            f"adapter {staged.key}: no slot of rank >= {staged.rank} is free for it in this "
            "call (over the memory budget: hotswap.rankBuckets within hotswap.memoryBudgetMB)"
        )

    def attached(self) -> list[AdapterRef]:
        """Adapters in pipeline slots, least recently used first."""
        with self._lock:
            return list(self._attached)

    def prewarm(self, resolved: Any) -> dict[str, float]:
        """Stage an adapter and attach it to a slot ahead of traffic; returns timings (ms)."""
        start = time.perf_counter()
        staged = self.stage(resolved)
        staged_at = time.perf_counter()
        with self._lock:
            self._attach([staged])
        done = time.perf_counter()
        return {"stage_ms": (staged_at - start) * 1e3, "swap_ms": (done - staged_at) * 1e3}

    def switch(self, adapters: list[tuple[Any, float]]) -> float:
        """Make exactly `adapters` active (staging, attaching as needed); seconds the swap took.

        Generation does this itself; it is public for prewarming a set and for benchmarks.
        """
        staged = [self.stage(resolved) for resolved, _ in adapters]
        self.check_slots(staged)
        with self._lock:
            start = time.perf_counter()
            indices = self._attach(staged)
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
        """Run one job (see `run_requests`)."""
        return self.generate_batch([job])[0]

    def generate_batch(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        """One output per job, in order (see `run_requests`)."""
        return [request.output for request in self.run_requests(jobs)]

    def run_requests(self, jobs: list[GenerationJob]) -> list[StagedRequest]:
        """Run jobs of one shape key in as few pipeline calls as their adapters allow.

        Errors come back per job as data, never raised; each request keeps its float images.
        """
        if len({job.shape_key() for job in jobs}) > 1:
            raise ValueError("a batch needs jobs with one shape key; group them first")
        start = time.perf_counter()
        requests: list[StagedRequest] = []
        for job in jobs:
            request = StagedRequest(job)
            try:
                request.staged = [self.stage(resolved) for resolved, _ in job.adapters]
                check_token_clash(request.staged)
                self.check_slots(request.staged)
            except ServingError as error:
                request.output.error = error.info()
            requests.append(request)
        stage_ms = (time.perf_counter() - start) * 1e3
        ready = [request for request in requests if request.output.error is None]
        for call in self._plan(ready):
            try:
                self._run_call(call, stage_ms)
            except Exception as error:  # noqa: BLE001, PERF203 - answer every caller, never hang
                log.exception("Generation failed", extra={"requests": len(call.requests)})
                failure = ErrorInfo(status=500, detail=f"generation failed: {error}", kind="Error")
                for request in call.requests:
                    request.output = GenerationOutput(error=failure)
        return requests

    def _plan(self, requests: list[StagedRequest]) -> list[PlannedCall]:
        """Mixed batching's plan, or one call per shared adapter choice."""
        if self.mixing is not None:
            return self.mixing.plan(requests)
        groups: dict[Any, list[StagedRequest]] = defaultdict(list)
        for request in requests:
            groups[request.job.choice_key()].append(request)
        return [PlannedCall(group) for group in groups.values()]

    def _run_call(self, call: PlannedCall, stage_ms: float) -> None:
        """Attach, rewrite and check prompts, run one pipeline call, split its images back."""
        union: dict[AdapterRef, StagedAdapter] = {}
        for request in call.requests:
            for staged in request.staged:
                union.setdefault(staged.key, staged)
        waited = time.perf_counter()
        with self._lock:
            locked = time.perf_counter()
            slots = dict(zip(union, self._attach(list(union.values())), strict=True))
            runnable: list[StagedRequest] = []
            samples: list[tuple[GenerationJob, str, str]] = []
            choices: list[LoraChoice] = []
            for request in call.requests:
                indices = [slots[staged.key] for staged in request.staged]
                prompt = self.embedding_slots.rewrite(request.job.prompt, indices)
                negative = self.embedding_slots.rewrite(request.job.negative_prompt or "", indices)
                try:
                    self.check_prompt(prompt)
                    self.check_prompt(negative)
                except ServingError as error:
                    request.output.error = error.info()
                    continue
                runnable.append(request)
                samples.append((request.job, prompt, negative))
                choices.append(request.lora_choice(slots))
            if not runnable:
                return
            with self._activate(choices, [request.job.num_images for request in runnable]):
                swapped = time.perf_counter()
                arrays = call_pipeline(self.pipeline, samples)
            finished = time.perf_counter()
        if call.mixed and self.mixing is not None:
            self.mixing.observe_call(len(arrays), len(union))
        timings = {
            "stage_ms": stage_ms,
            "queue_ms": (locked - waited) * 1e3,
            "swap_ms": (swapped - locked) * 1e3,
            "inference_ms": (finished - swapped) * 1e3,
        }
        self._finish(runnable, arrays, timings)
        self.stats.swap_seconds += swapped - locked
        self.stats.inference_seconds += finished - swapped

    def _activate(
        self, choices: list[LoraChoice], image_counts: list[int]
    ) -> AbstractContextManager[None]:
        """Put the call's LoRA choices in place: one shared choice on the slots themselves,
        several through mixed batching's per-sample routing (hold the lock)."""
        if len({tuple(sorted(choice)) for choice in choices}) == 1:
            self.lora_slots.activate(list(choices[0]))
            return nullcontext()
        if self.mixing is None:
            raise ValueError("requests with different adapters in one call need mixed batching")
        return self.mixing.routed(choices, image_counts)

    def _finish(
        self, requests: list[StagedRequest], arrays: Any, timings: dict[str, float]
    ) -> None:
        """Give each request its images (float and PNG), adapters and timings; count them."""
        cursor = 0
        for request in requests:
            job, output = request.job, request.output
            request.images = list(arrays[cursor : cursor + job.num_images])
            cursor += job.num_images
            output.images = [png_bytes(to_uint8(image)) for image in request.images]
            output.seed = job.seed
            output.adapters = [
                adapter_info(staged, weight)
                for staged, (_, weight) in zip(request.staged, job.adapters, strict=True)
            ]
            output.timings = dict(timings)
            self.stats.requests += 1
            self.stats.images += job.num_images
