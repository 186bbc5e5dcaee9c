"""The serving application with mixed-adapter batching in its model replicas.

    applications:
      - name: tuneforge
        import_path: tuneforge_serving.mixed.app:build_app
        args: {baseModel: s3://models/sd15, adapterLruSize: 8,
               mixedBatching: {enabled: true, maxBatchSize: 4, maxWaitS: 0.02}}

Same ingress, API and model deployment as `tuneforge_serving.app:build_app` (and, like
it, no torch import until `build_app` runs); the model replica (`MixedModelServer`,
mixed/deployment.py) sends each request through a `MixedBatching` former
instead of `@serve.batch` when `mixedBatching.enabled`. `mixedBatching` is taken out of
the args here because `ServingConfig` does not know it yet; once the serving config and
deployment carry it (docs/serving-mixed-batching.md, "Integration"), this module is a
thin alias of `tuneforge_serving.app`.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from tuneforge_serving.app import Ingress, model_deployment_options
from tuneforge_serving.config import ServingConfig
from tuneforge_serving.mixed.config import MixedBatchingConfig

MIXED_KEYS = ("mixedBatching", "mixed_batching")


def split_args(args: dict[str, Any]) -> tuple[dict[str, Any], MixedBatchingConfig]:
    """`args` without the mixed-batching block, and that block validated."""
    rest = {k: v for k, v in args.items() if k not in MIXED_KEYS}
    blocks = [args[k] for k in MIXED_KEYS if k in args]
    if len(blocks) > 1:
        raise ValueError("give mixedBatching once (camelCase or snake_case, not both)")
    return rest, MixedBatchingConfig.model_validate(blocks[0] if blocks else {})


def build_app(args: dict[str, Any]) -> Application:
    """`tuneforge_serving.app.build_app` with `MixedModelServer` as the model deployment."""
    from tuneforge_serving.mixed.deployment import MixedModelServer

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
