"""The Ray Serve model deployment: a thin wrapper around ServingEngine.

One replica holds one warm pipeline. Requests arrive with their adapter set as the
multiplexed model id (so Serve routes them to replicas that already hold the set) and
join a batch of the replica's `BatchedEngine`: requests with the same shape and adapter
choice, or, with mixed batching, the same shape only. A missing multiplex id is not an
error: the set is taken from the request itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ray import serve

from tuneforge.contract import AdapterRef
from tuneforge_serving.batching import BatchedEngine
from tuneforge_serving.config import ServingConfig
from tuneforge_serving.engine import ServingEngine
from tuneforge_serving.errors import ServingError
from tuneforge_serving.jobs import GenerationJob, GenerationOutput

log = logging.getLogger(__name__)


def adapter_set_holder() -> Callable[[str], Awaitable[str]]:
    """A fresh function that registers `model_id` (an adapter set) as hot on a replica for
    Serve's router; `serve.multiplexed` keeps its LRU on the function, so one per replica.

    The adapters themselves live in the engine's host cache and slot LRU; Serve's eviction
    of an id therefore frees nothing and needs no idempotent `__del__`.
    """

    async def hold_adapter_set(model_id: str) -> str:
        return model_id

    return hold_adapter_set


class ModelServer:
    """Serve replica body (wrapped by `serve.deployment` in `app.build_app`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        from tuneforge.registry import AdapterRegistry
        from tuneforge.settings import Settings

        self.config = ServingConfig.model_validate(config)
        self.engine = ServingEngine(self.config, AdapterRegistry(Settings()))
        self.batches = BatchedEngine(self.engine)
        self.max_num_models = self.engine.slot_count
        """Serve's `max_num_models_per_replica`: the adapters this replica really keeps
        attached (its slots after the memory budget), so the router's view of what is hot
        here is the slot LRU's, not a guess."""
        self._hold_adapter_set = serve.multiplexed(max_num_models_per_replica=self.max_num_models)(
            adapter_set_holder()
        )

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
        return await self.batches.generate(job)

    async def prewarm(self, resolved: Any) -> dict[str, Any]:
        """Stage and attach one adapter; errors come back as data."""
        try:
            timings = await asyncio.to_thread(self.engine.prewarm, resolved)
        except ServingError as error:
            return {"error": error.info()}
        return {"error": None, "timings": timings}

    def attached(self) -> list[AdapterRef]:
        """Adapters in this replica's slots."""
        return self.engine.attached()

    def ready(self) -> bool:
        """The pipeline is loaded (the constructor finished)."""
        return True

    def mixed_metrics(self) -> bytes:
        """This replica's mixed-batching metrics (Prometheus text); empty when off."""
        return self.batches.render_metrics()

    def stats(self) -> dict[str, Any]:
        """Engine counters, plus the torch threads this replica computes with."""
        import torch

        return {**vars(self.engine.stats), "torch_threads": torch.get_num_threads()}
