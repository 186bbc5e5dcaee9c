"""The Ray Serve model deployment: a thin wrapper around ServingEngine.

One replica holds one warm pipeline. Requests arrive with their adapter set as the
multiplexed model id (so Serve routes them to replicas that already hold the set);
requests are batched with `@serve.batch` and each batch is split into groups with the
same adapter set and shape, each group one pipeline call. A missing multiplex id is
not an error: the set is taken from the request itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from ray import serve

from tuneforge_serving.config import ServingConfig
from tuneforge_serving.engine import ServingEngine
from tuneforge_serving.errors import ErrorInfo, ServingError
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.mixed.service import MixedBatching

log = logging.getLogger(__name__)


def group_jobs(jobs: list[GenerationJob]) -> list[list[int]]:
    """Positions of jobs grouped by shape key (same adapters, weights, size, steps, guidance).

    This is the batch former's seam: a mixed-adapter former (issue 8) would group by shape
    only and give each sample its own slots through peft's per-sample `adapter_names`.
    """
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for position, job in enumerate(jobs):
        groups[job.shape_key()].append(position)
    return list(groups.values())


class ModelServer:
    """Serve replica body (wrapped by `serve.deployment` in `app.build_app`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        from tuneforge.registry import AdapterRegistry
        from tuneforge.settings import Settings

        self.config = ServingConfig.model_validate(config)
        self.engine = ServingEngine(self.config, AdapterRegistry(Settings()))
        self._batched.set_max_batch_size(self.config.batching.max_batch_size)
        self._batched.set_batch_wait_timeout_s(self.config.batching.batch_wait_timeout_s)
        mixed = self.config.mixed_batching
        self.mixed = (
            MixedBatching(self.engine, mixed, self.config.metrics_prefix) if mixed.enabled else None
        )

    @serve.multiplexed(max_num_models_per_replica=8)
    async def _hold_adapter_set(self, model_id: str) -> str:
        """Registers `model_id` (an adapter set) as hot on this replica for Serve's router.

        The adapters themselves live in the engine's host cache and slot LRU; Serve's
        eviction of an id therefore frees nothing and needs no idempotent `__del__`.
        """
        return model_id

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        """Stage the job's adapters (errors come back as data), then join a batch."""
        try:
            await asyncio.gather(
                *(asyncio.to_thread(self.engine.stage, r) for r, _ in job.adapters)
            )
        except ServingError as error:
            return GenerationOutput(error=error.info())
        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self._hold_adapter_set(model_id)
        if self.mixed is not None:
            return await self.mixed.generate(job)
        result: GenerationOutput = await self._batched(job)
        return result

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.0)
    async def _batched(self, jobs: list[GenerationJob]) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = [GenerationOutput() for _ in jobs]
        for positions in group_jobs(jobs):
            group = [jobs[p] for p in positions]
            try:
                results = await asyncio.to_thread(self.engine.generate_group, group)
            except Exception as error:  # noqa: BLE001 - answer every caller, never hang
                log.exception("Generation failed")
                failure = ErrorInfo(status=500, detail=f"generation failed: {error}", kind="Error")
                results = [GenerationOutput(error=failure) for _ in group]
            for position, result in zip(positions, results, strict=True):
                outputs[position] = result
        return outputs

    async def prewarm(self, resolved: Any) -> dict[str, Any]:
        """Stage and attach one adapter; errors come back as data."""
        try:
            timings = await asyncio.to_thread(self.engine.prewarm, resolved)
        except ServingError as error:
            return {"error": error.info()}
        return {"error": None, "timings": timings}

    def attached(self) -> list[tuple[str, int]]:
        """Adapters in this replica's slots."""
        return [(key.name, key.version) for key in self.engine.attached()]

    def ready(self) -> bool:
        """The pipeline is loaded (the constructor finished)."""
        return True

    def mixed_metrics(self) -> bytes:
        """This replica's mixed-batching metrics (Prometheus text); empty when off."""
        return self.mixed.render_metrics() if self.mixed is not None else b""

    def stats(self) -> dict[str, Any]:
        """Engine counters, plus the torch threads this replica computes with."""
        import torch

        return {**vars(self.engine.stats), "torch_threads": torch.get_num_threads()}
