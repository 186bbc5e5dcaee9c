"""`MixedBatching`: the former, the runner and the metrics wired to one ServingEngine.

This is the one object the model deployment needs:

    self.mixed = MixedBatching(self.engine, MixedBatchingConfig(), prefix)
    output = await self.mixed.generate(job)      # instead of the @serve.batch path

Errors never escape as exceptions: a failed batch answers each caller with a 500
`GenerationOutput`, like the deployment's own batch path.
"""

from __future__ import annotations

import logging
from typing import Any

from tuneforge_serving.errors import ErrorInfo
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.mixed.config import MixedBatchingConfig
from tuneforge_serving.mixed.former import MixedBatchFormer
from tuneforge_serving.mixed.metrics import MixedBatchMetrics
from tuneforge_serving.mixed.runner import MixedBatchRunner

log = logging.getLogger(__name__)


class MixedBatching:
    """Mixed-adapter batching for one engine (one per model replica)."""

    def __init__(
        self,
        engine: Any,
        config: MixedBatchingConfig | None = None,
        metrics_prefix: str = "tuneforge_serving",
    ) -> None:
        self.config = config or MixedBatchingConfig()
        self.metrics = MixedBatchMetrics(metrics_prefix)
        self.runner = MixedBatchRunner(engine, self.config, self.metrics)
        self.former: MixedBatchFormer[GenerationJob, GenerationOutput] = MixedBatchFormer(
            self.runner.run, self.config, self.metrics
        )

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        """The job's output, computed in whatever mixed batch it joins."""
        try:
            return await self.former.submit(job)
        except Exception as error:  # noqa: BLE001 - answered as data, like the deployment
            log.exception("Mixed batching failed")
            return GenerationOutput(
                error=ErrorInfo(status=500, detail=f"generation failed: {error}", kind="Error")
            )

    def render_metrics(self) -> bytes:
        """This replica's mixed-batching metrics in the Prometheus text format."""
        return self.metrics.render()

    async def close(self) -> None:
        """Stop the former (queued requests are cancelled)."""
        await self.former.close()
