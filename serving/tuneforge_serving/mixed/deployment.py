"""The model replica with mixed-adapter batching (the Serve deployment body).

`MixedModelServer` is the serving component's `ModelServer` plus a `MixedBatching`
former: with `mixedBatching.enabled` each request is staged (concurrently, errors as
data) and then joins a mixed batch instead of `@serve.batch`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tuneforge_serving.deployment import ModelServer
from tuneforge_serving.errors import ServingError
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.mixed.config import MixedBatchingConfig
from tuneforge_serving.mixed.service import MixedBatching


class MixedModelServer(ModelServer):
    """The model replica, batching mixed adapters when `mixedBatching.enabled`."""

    def __init__(self, config: dict[str, Any], mixed: dict[str, Any]) -> None:
        super().__init__(config)
        mixed_config = MixedBatchingConfig.model_validate(mixed)
        self.mixed = (
            MixedBatching(self.engine, mixed_config, self.config.metrics_prefix)
            if mixed_config.enabled
            else None
        )

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        """Stage the job's adapters concurrently (errors as data), then join a mixed batch."""
        if self.mixed is None:
            return await super().generate(job)
        try:
            await asyncio.gather(
                *(asyncio.to_thread(self.engine.stage, r) for r, _ in job.adapters)
            )
        except ServingError as error:
            return GenerationOutput(error=error.info())
        return await self.mixed.generate(job)

    def mixed_metrics(self) -> bytes:
        """This replica's mixed-batching metrics (Prometheus text); empty when off."""
        return self.mixed.render_metrics() if self.mixed is not None else b""
