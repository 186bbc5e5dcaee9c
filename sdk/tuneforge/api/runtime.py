"""Training runtimes: the platform-owned half of a RayJob (image, placement, secrets).

A FineTuneJob names a runtime (`spec.runtime`); the platform team defines runtimes in Helm
values, which the chart renders into one ConfigMap (`tuneforge-runtimes`) in the operator's
namespace: one data key per runtime name, its value this model as YAML (camelCase). Users
never set images, node selectors or secrets; platform teams never touch user jobs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from tuneforge.api.base import ApiModel

RUNTIMES_CONFIGMAP = "tuneforge-runtimes"
"""Name of the ConfigMap holding the runtimes, in the operator's namespace."""
TENANCY_KEY = "tenancy.yaml"
"""Data key of the tenancy policy (`tuneforge.tenancy`) in the same ConfigMap; its dot keeps
it apart from every runtime name."""

_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$"
_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
_ABSOLUTE_PATH = r"^/"

TRAINER_CACHE_ENV = "TUNEFORGE_TRAINER_CACHE"
"""The trainer's download cache (`TrainerSettings.trainer_cache`): the builder points it at
the model-cache volume."""
DEFAULT_MODEL_CACHE_PATH = "/var/cache/tuneforge"
"""Where the model-cache volume is mounted in every Ray container by default."""


class Toleration(ApiModel):
    """A Kubernetes toleration (core/v1 `Toleration`)."""

    key: str | None = None
    """Taint key; empty with operator `Exists` tolerates everything."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """`Equal` (default) or `Exists`."""
    value: str | None = None
    """Taint value (with `Equal`)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; unset matches all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long a `NoExecute` taint is tolerated."""


class HeadResources(ApiModel):
    """The Ray head pod. It runs the driver (the trainer's coordinator), never a training worker."""

    cpu: str = Field(default="2", pattern=_QUANTITY)
    """CPU request and limit of the head container."""
    memory: str = Field(default="8Gi", pattern=_QUANTITY)
    """Memory request and limit of the head container."""


class ModelCache(ApiModel):
    """The model-cache volume of every Ray container, mounted at the trainer's download cache.

    Base models and datasets are downloaded there once (under a file lock) instead of on the
    container's disk. The volume is an `emptyDir` of `sizeLimit` unless a PersistentVolumeClaim
    or a hostPath is named (at most one): an `emptyDir` lives as long as its pod (each worker
    pod downloads the weights once; the head only reads configs), a hostPath keeps one copy
    per node across jobs, a ReadWriteMany claim one copy for all the pods that mount it.
    """

    mount_path: str = Field(default=DEFAULT_MODEL_CACHE_PATH, pattern=_ABSOLUTE_PATH)
    """Mount path in the Ray containers; it becomes their `TUNEFORGE_TRAINER_CACHE`."""
    size_limit: str = Field(default="20Gi", pattern=_QUANTITY)
    """Size limit of the default `emptyDir` (SD 1.5 in fp32 is 4.3 GB; datasets and class
    images come on top). Ignored with a claim or a hostPath."""
    persistent_volume_claim: str | None = Field(default=None, pattern=_NAME)
    """An existing PersistentVolumeClaim in the job's namespace to use instead of the
    `emptyDir` (ReadWriteMany when the workers run on several nodes)."""
    host_path: str | None = Field(default=None, pattern=_ABSOLUTE_PATH)
    """A folder on the node to use instead of the `emptyDir` (created if missing), so that
    every pod on a node shares one download across jobs."""

    @model_validator(mode="after")
    def _one_volume_source(self) -> ModelCache:
        if self.persistent_volume_claim and self.host_path:
            raise ValueError("modelCache: name either persistentVolumeClaim or hostPath, not both")
        return self


_QUANTITY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity_bytes(quantity: str) -> float:
    """Bytes in a Kubernetes storage quantity such as `20Gi` or `500M` (`m` is not a size)."""
    match = re.match(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$", quantity)
    if not match or match.group(2) not in _QUANTITY_UNITS:
        raise ValueError(f"{quantity!r} is not a storage quantity such as 20Gi or 500M")
    return float(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


class EphemeralStorage(ApiModel):
    """`ephemeral-storage` request and limit of every Ray container.

    The pod's disk: container layers, logs, `/tmp` (Ray's session folder) and the model cache
    when it is an `emptyDir`. The kubelet evicts a pod that writes more than its limit.
    """

    request: str = Field(default="8Gi", pattern=_QUANTITY)
    """Scheduled disk of each Ray pod."""
    limit: str = Field(default="32Gi", pattern=_QUANTITY)
    """Most disk each Ray pod may write, the model-cache `emptyDir` included."""

    @model_validator(mode="after")
    def _request_within_limit(self) -> EphemeralStorage:
        if quantity_bytes(self.request) > quantity_bytes(self.limit):
            raise ValueError(
                f"ephemeralStorage: request {self.request} is above limit {self.limit}; "
                "lower the request or raise the limit"
            )
        return self


class TrainingRuntime(ApiModel):
    """How a job's Ray cluster is built: image, Ray version, placement, secrets.

    Worker sizes come from the job's `resources`; everything else comes from here.
    """

    image: str = Field(min_length=1)
    """Trainer image for head and workers, e.g. `ghcr.io/acme/tuneforge-trainer:0.1.0`."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Image pull policy of every Ray container."""
    image_pull_secrets: list[str] = Field(default_factory=list)
    """Names of Secrets used to pull the image."""
    ray_version: str = Field(default="2.60.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    """Ray version inside the image (KubeRay's `rayVersion`)."""
    gpu_resource_name: str = Field(default="nvidia.com/gpu", min_length=1)
    """Extended resource that schedules GPUs, e.g. `nvidia.com/gpu` or `amd.com/gpu`."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node selector of the worker pods (GPU nodes)."""
    head_node_selector: dict[str, str] = Field(default_factory=dict)
    """Node selector of the head pod (defaults to none: the head needs no GPU)."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Tolerations of the worker pods (GPU taints)."""
    service_account_name: str | None = Field(default=None, pattern=_NAME)
    """ServiceAccount the Ray pods run as."""
    s3_secret_ref: str | None = Field(default=None, pattern=_NAME)
    """Secret whose keys become environment variables of every Ray container
    (`TUNEFORGE_S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...)."""
    mlflow_secret_ref: str | None = Field(default=None, pattern=_NAME)
    """Secret whose keys become environment variables of every Ray container
    (`MLFLOW_TRACKING_URI`, `MLFLOW_TRACKING_TOKEN`, ...)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra plain environment variables of every Ray container."""
    head: HeadResources = Field(default_factory=HeadResources)
    """Size of the head pod."""
    shm_size: str | None = Field(default="2Gi", pattern=_QUANTITY)
    """Size of the in-memory `/dev/shm` of every Ray container (data loaders need it);
    unset keeps the container runtime's default."""
    model_cache: ModelCache = Field(default_factory=ModelCache)
    """The volume that holds downloaded base models and datasets in every Ray container."""
    priority_class_name: str | None = Field(default=None, pattern=_NAME)
    """PriorityClass of the Ray pods."""
    pod_labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on the Ray pods."""
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations on the Ray pods."""
    run_as_user: int = Field(default=1000, ge=1)
    """Non-root uid of every Ray container (the trainer image's `ray` user is 1000)."""
    run_as_group: int = Field(default=1000, ge=1)
    """gid of every Ray container, also the pods' `fsGroup` (so volumes are writable)."""
    ephemeral_storage: EphemeralStorage = Field(default_factory=EphemeralStorage)
    """Disk request and limit of every Ray pod."""
    queue_name: str | None = Field(default=None, pattern=_NAME, max_length=63)
    """Kueue LocalQueue of this runtime's jobs that name no `spec.queueName` of their own: their
    RayJob is created suspended with the `kueue.x-k8s.io/queue-name` label, like a queued job."""
    allowed_namespaces: list[str] | None = None
    """Namespaces whose jobs may use this runtime (its placement, PriorityClass, Secrets);
    unset allows every namespace. Other namespaces are refused and never see it listed."""

    def allows(self, namespace: str) -> bool:
        """True when jobs of `namespace` may use this runtime."""
        return self.allowed_namespaces is None or namespace in self.allowed_namespaces

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not re.match(_ENV_NAME, name)]
        if bad:
            raise ValueError(
                f"runtime.env: invalid variable names {bad}: use letters, digits, '_', '-', '.'"
            )
        if TRAINER_CACHE_ENV in value:
            raise ValueError(
                f"runtime.env: {TRAINER_CACHE_ENV} is set from modelCache.mountPath; set that"
            )
        return value

    @model_validator(mode="after")
    def _cache_fits_the_disk_limit(self) -> TrainingRuntime:
        cache = self.model_cache
        if cache.persistent_volume_claim or cache.host_path:
            return self
        if quantity_bytes(cache.size_limit) >= quantity_bytes(self.ephemeral_storage.limit):
            raise ValueError(
                f"ephemeralStorage.limit {self.ephemeral_storage.limit} must exceed "
                f"modelCache.sizeLimit {cache.size_limit} (the cache emptyDir counts against "
                "it): raise the limit or lower the cache size"
            )
        return self


def _parse_one(name: str, text: str) -> TrainingRuntime | str:
    try:
        document: Any = yaml.safe_load(text)
        return TrainingRuntime.model_validate(document)
    except Exception as error:  # every problem becomes a message naming the runtime
        return f"runtime {name!r} in ConfigMap {RUNTIMES_CONFIGMAP} is invalid: {error}"


def parse_runtimes(data: dict[str, str]) -> dict[str, TrainingRuntime | str]:
    """Parse the data of the runtimes ConfigMap: runtime name -> runtime, or an error message.

    The tenancy policy's key (`TENANCY_KEY`) is not a runtime and is left out.
    """
    return {name: _parse_one(name, text) for name, text in data.items() if name != TENANCY_KEY}


def runtimes_configmap(
    runtimes: dict[str, TrainingRuntime], namespace: str, tenancy: str | None = None
) -> dict[str, Any]:
    """The `tuneforge-runtimes` ConfigMap for these runtimes (what the Helm chart renders),
    with the tenancy policy's YAML under `TENANCY_KEY` when given."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": RUNTIMES_CONFIGMAP,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "tuneforge",
                "app.kubernetes.io/component": "runtimes",
            },
        },
        "data": {
            **{
                name: yaml.safe_dump(runtime.to_wire(), sort_keys=True)
                for name, runtime in sorted(runtimes.items())
            },
            **({TENANCY_KEY: tenancy} if tenancy is not None else {}),
        },
    }
