"""`build_app(args)`: the Ray Serve application (RayService `serveConfigV2` or `serve run`).

    applications:
      - name: tuneforge
        route_prefix: /
        import_path: tuneforge_serving.app:build_app
        args: {baseModel: s3://models/sd15, adapterLruSize: 3, ...}   # ServingConfig

Two deployments: `<modelName>` (the warm pipeline, GPU when present; multiplexed by
adapter set, batched, autoscaled) and `Ingress` (FastAPI: validation, auth, admission
control, registry look-ups; cheap CPU replicas). This module imports no torch, so the
ingress replicas stay light; the model deployment's module is imported in `build_app`.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from tuneforge_serving.api import ApiService, create_api
from tuneforge_serving.backends import ModelBackend, ServeBackend
from tuneforge_serving.config import ServingConfig


@serve.ingress()
class Ingress:
    """HTTP entry point; holds no model, only handles to the model deployments."""

    def __init__(self, config: dict[str, Any], models: dict[str, Any]) -> None:
        from tuneforge.registry import AdapterRegistry
        from tuneforge.settings import Settings

        self.config = ServingConfig.model_validate(config)
        backends: dict[str, ModelBackend] = {name: ServeBackend(h) for name, h in models.items()}
        token = self.config.auth.load_token()
        self.service = ApiService(self.config, backends, AdapterRegistry(Settings()), token)

    def __serve_build_asgi_app__(self) -> Any:
        return create_api(self.service)


def model_deployment_options(config: ServingConfig) -> dict[str, Any]:
    """`serve.deployment` options of the model deployment, from the config."""
    import torch

    options: dict[str, Any] = {
        "name": config.model_name,
        "max_ongoing_requests": config.max_concurrent_requests,
        "max_queued_requests": max(config.max_queued_requests, 1),
        "ray_actor_options": {
            "num_cpus": config.num_cpus,
            "num_gpus": config.replica_gpus(torch.cuda.is_available()),
        },
        "health_check_period_s": 10,
        "graceful_shutdown_timeout_s": max(config.request_timeout_s, 5),
    }
    if config.autoscaling.enabled:
        options["autoscaling_config"] = config.autoscaling.to_serve()
    else:
        options["num_replicas"] = config.num_replicas
    return options


def build_app(args: dict[str, Any]) -> Application:
    """Validate `args` as a ServingConfig and bind the ingress to one model deployment."""
    from tuneforge_serving.deployment import ModelServer

    config = ServingConfig.model_validate(args)
    payload = config.model_dump(mode="json")
    model = serve.deployment(ModelServer).options(**model_deployment_options(config))
    ingress = serve.deployment(Ingress).options(
        name="Ingress",
        num_replicas=1,
        max_ongoing_requests=config.max_concurrent_requests * 4 + config.max_queued_requests,
        ray_actor_options={"num_cpus": 0.1},
    )
    return ingress.bind(payload, {config.model_name: model.bind(payload)})
