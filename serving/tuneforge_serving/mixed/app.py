"""The serving application with mixed-adapter batching in its model replicas.

    applications:
      - name: tuneforge
        import_path: tuneforge_serving.mixed.app:build_app
        args: {baseModel: s3://models/sd15, adapterLruSize: 8,
               mixedBatching: {enabled: true, maxBatchSize: 4, maxWaitS: 0.02}}

Same ingress, API and model deployment as `tuneforge_serving.app:build_app`; the model
replica (`MixedModelServer`) sends each request through a `MixedBatching` former
instead of `@serve.batch` when `mixedBatching.enabled`. `mixedBatching` is taken out of
the args here because `ServingConfig` does not know it yet; once the serving config and
deployment carry it (docs/serving-mixed-batching.md, "Integration"), this module is a
thin alias of `tuneforge_serving.app`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.serve import Application

from tuneforge_serving.app import Ingress, model_deployment_options
from tuneforge_serving.config import ServingConfig
from tuneforge_serving.deployment import ModelServer
from tuneforge_serving.engine import GenerationJob, GenerationOutput
from tuneforge_serving.errors import ServingError
from tuneforge_serving.mixed.config import MixedBatchingConfig
from tuneforge_serving.mixed.service import MixedBatching

MIXED_KEYS = ("mixedBatching", "mixed_batching")


def split_args(args: dict[str, Any]) -> tuple[dict[str, Any], MixedBatchingConfig]:
    """`args` without the mixed-batching block, and that block validated."""
    rest = {k: v for k, v in args.items() if k not in MIXED_KEYS}
    blocks = [args[k] for k in MIXED_KEYS if k in args]
    if len(blocks) > 1:
        raise ValueError("give mixedBatching once (camelCase or snake_case, not both)")
    return rest, MixedBatchingConfig.model_validate(blocks[0] if blocks else {})


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


def build_app(args: dict[str, Any]) -> Application:
    """`tuneforge_serving.app.build_app` with `MixedModelServer` as the model deployment."""
    serving_args, mixed = split_args(args)
    config = ServingConfig.model_validate(serving_args)
    payload = config.model_dump(mode="json")
    model = serve.deployment(MixedModelServer).options(**model_deployment_options(config))
    ingress = serve.deployment(Ingress).options(
        name="Ingress",
        num_replicas=1,
        max_ongoing_requests=config.max_concurrent_requests * 4 + config.max_queued_requests,
        ray_actor_options={"num_cpus": 0.1},
    )
    bound = model.bind(payload, mixed.model_dump(mode="json"))
    return ingress.bind(payload, {config.model_name: bound})
