"""The chart speaks the components' languages: runtimes, operator settings, serving args.

Each rendered piece is parsed by the component's own model, so a renamed field on either side
fails here rather than in a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.helmchart import CHART_DIR, one, render, template
from tests.unit.helm.variants import VARIANTS

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def _aliases(model: type[Any]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _runtimes(docs: list[dict[str, Any]]) -> dict[str, Any]:
    from tuneforge.api.runtime import parse_runtimes

    configmap = one(docs, "ConfigMap", "-runtimes")
    parsed = parse_runtimes(configmap["data"])
    errors = {name: r for name, r in parsed.items() if isinstance(r, str)}
    assert not errors, errors
    return parsed


def test_runtime_values_have_exactly_the_model_fields() -> None:
    from tuneforge.api.runtime import TrainingRuntime

    runtime_schema = SCHEMA["properties"]["runtimes"]["additionalProperties"]
    assert set(runtime_schema["properties"]) == _aliases(TrainingRuntime)


def test_default_runtime_is_filled_from_the_chart(chart: Path) -> None:
    runtime = _runtimes(render(chart, VARIANTS["two-replicas"], release="tf"))["default"]
    assert runtime.image == "ghcr.io/tuneforge/tuneforge-trainer:0.1.0"
    assert runtime.ray_version == "2.60.0"
    assert runtime.s3_secret_ref == "tf-tuneforge-s3"
    assert runtime.mlflow_secret_ref == "tf-tuneforge-mlflow"
    assert runtime.image_pull_secrets == ["regcred"]
    assert runtime.env["TUNEFORGE_S3_ENDPOINT"] == "http://minio.minio:9000"
    assert runtime.env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow:5000"
    assert runtime.service_account_name is None
    assert [t.key for t in runtime.tolerations] == ["nvidia.com/gpu"]


def test_named_runtimes_keep_their_own_settings(chart: Path) -> None:
    runtimes = _runtimes(render(chart, VARIANTS["existing-secret"]))
    assert set(runtimes) == {"default", "a100"}
    a100 = runtimes["a100"]
    assert a100.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}
    assert a100.service_account_name == "trainer"
    assert a100.s3_secret_ref == "team-s3"
    assert a100.mlflow_secret_ref == "my-mlflow"
    assert a100.env["NCCL_DEBUG"] == "INFO"
    assert a100.env["TUNEFORGE_S3_ENDPOINT"] == "https://s3.eu-west-1.amazonaws.com"
    assert runtimes["default"].s3_secret_ref == "my-s3"


def test_runtimes_mount_a_model_cache_the_chart_documents(chart: Path) -> None:
    from tuneforge.api.runtime import DEFAULT_MODEL_CACHE_PATH, ModelCache

    values = {
        "runtimes": {
            "default": {},
            "nvme": {"modelCache": {"hostPath": "/mnt/nvme/tuneforge"}},
            "shared": {"modelCache": {"persistentVolumeClaim": "sd-models"}},
        }
    }
    runtimes = _runtimes(render(chart, values))
    assert runtimes["default"].model_cache == ModelCache(mount_path=DEFAULT_MODEL_CACHE_PATH)
    assert runtimes["default"].model_cache.size_limit == "20Gi"
    assert runtimes["nvme"].model_cache.host_path == "/mnt/nvme/tuneforge"
    assert runtimes["nvme"].model_cache.persistent_volume_claim is None
    assert runtimes["shared"].model_cache.persistent_volume_claim == "sd-models"
    defaults = SCHEMA["properties"]["runtimes"]["additionalProperties"]["properties"]
    assert set(defaults["modelCache"]["properties"]) == _aliases(ModelCache)


def test_a_runtime_names_its_default_kueue_queue(chart: Path) -> None:
    from tests.unit.operator.helpers import job
    from tuneforge_operator.builder import KUEUE_QUEUE_LABEL, build_rayjob

    values = {"runtimes": {"default": {}, "queued": {"queueName": "gpu-queue"}}}
    runtimes = _runtimes(render(chart, values))
    assert runtimes["default"].queue_name is None
    assert runtimes["queued"].queue_name == "gpu-queue"
    rayjob = build_rayjob(job(), runtimes["queued"])
    assert rayjob["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "gpu-queue"
    assert rayjob["spec"]["suspend"] is True
    result = template(chart, {"runtimes": {"default": {"queueName": "GPU_Queue"}}})
    assert result.returncode != 0 and "queueName" in result.output, result.output


def test_a_runtime_with_two_cache_volumes_fails_the_install(chart: Path) -> None:
    cache = {"persistentVolumeClaim": "sd-models", "hostPath": "/mnt/sd"}
    result = template(chart, {"runtimes": {"default": {"modelCache": cache}}})
    assert result.returncode != 0
    assert "runtimes.default.modelCache: name either" in result.output, result.output


def _container_env(docs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, Any]]:
    deployment = one(docs, "Deployment", "-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return literal, container


@pytest.mark.parametrize("variant", ["defaults", "single-namespace", "two-replicas"])
def test_operator_settings_parse_the_chart_env(
    chart: Path, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge_operator.settings import OperatorSettings

    values = VARIANTS[variant]
    docs = render(chart, values, release="tf", namespace="tf-system")
    env, container = _container_env(docs)
    fields = {f"TUNEFORGE_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    unknown = {n for n in env if n.startswith("TUNEFORGE_OPERATOR_")} - fields
    assert not unknown, f"the chart sets settings the operator does not have: {unknown}"

    for name in list(__import__("os").environ):
        if name.startswith("TUNEFORGE_OPERATOR_") or name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE", "tf-system")  # downward API
    settings = OperatorSettings()
    operator_values = values.get("operator", {})
    watched = [] if operator_values.get("clusterWide") else ["tf-system"]  # the release's own
    assert settings.namespaces == (operator_values.get("watchNamespaces") or watched)
    assert settings.runtime_configmap == one(docs, "ConfigMap", "-runtimes")["metadata"]["name"]
    assert settings.peering_name == "tuneforge"
    assert settings.peering_lifetime_seconds == 60
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.liveness_port == ports["health"]
    assert settings.metrics_port == ports["metrics"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    if "mlflowTracking" in values:
        assert settings.mlflow_tracking_uri == values["mlflowTracking"]["uri"]
    service_ports = {p["name"] for p in one(docs, "Service", "-operator")["spec"]["ports"]}
    assert service_ports == {"health", "metrics"}


def test_operator_reads_mlflow_token_from_the_secret(chart: Path) -> None:
    docs = render(chart, VARIANTS["existing-secret"])
    _, container = _container_env(docs)
    assert container["envFrom"] == [{"secretRef": {"name": "my-mlflow", "optional": True}}]
    secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    assert secrets == [], "existingSecret given: the chart must not create Secrets"


def _serve_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    rayservice = one(docs, "RayService")
    return dict(yaml.safe_load(rayservice["spec"]["serveConfigV2"]))


def test_serving_values_have_only_serving_config_fields() -> None:
    from tuneforge_serving.config import (
        AutoscalingConfig,
        HotswapConfig,
        LimitsConfig,
        ServingConfig,
    )
    from tuneforge_serving.mixed.config import MixedBatchingConfig

    app = SCHEMA["properties"]["serving"]["properties"]["app"]["properties"]
    # `auth` is set by the chart from `serving.auth` (a Secret), never as an app arg.
    assert set(app) == _aliases(ServingConfig) - {"auth"}
    assert set(app["mixedBatching"]["properties"]) == _aliases(MixedBatchingConfig)
    assert set(app["limits"]["properties"]) == _aliases(LimitsConfig)
    assert set(app["hotswap"]["properties"]) == _aliases(HotswapConfig)
    assert set(app["autoscaling"]["properties"]) == _aliases(AutoscalingConfig)


def test_serve_config_builds_the_serving_app(chart: Path) -> None:
    from tuneforge_serving.config import ServingConfig

    docs = render(chart, VARIANTS["serving-gpu"])
    (application,) = _serve_config(docs)["applications"]
    assert application["import_path"] == "tuneforge_serving.app:build_app"
    config = ServingConfig.model_validate(application["args"])
    assert config.base_model == "s3://models/stable-diffusion-v1-5"
    assert config.adapter_lru_size == 4 and config.autoscaling.max_replicas == 16
    assert config.auth.token_env == "TUNEFORGE_SERVING_TOKEN"
    assert config.replica_gpus(cuda_visible=True) == 1.0


def test_rayservice_has_an_autoscaled_gpu_worker_group(chart: Path) -> None:
    docs = render(chart, VARIANTS["serving-gpu"])
    cluster = one(docs, "RayService")["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    (group,) = cluster["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"]) == (1, 8)
    assert group["rayStartParams"]["num-gpus"] == "2"
    pod = group["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"] == {"gpu": "a100"}
    token = next(e for e in container["env"] if e["name"] == "TUNEFORGE_SERVING_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "serving-token", "key": "token"}
    assert {"secretRef": {"name": "tf-tuneforge-s3"}} in container["envFrom"]


def test_serving_is_off_by_default(chart: Path) -> None:
    kinds = {d["kind"] for d in render(chart)}
    assert "RayService" not in kinds
