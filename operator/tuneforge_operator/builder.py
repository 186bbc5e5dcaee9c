"""Pure builder: FineTuneJob + TrainingRuntime -> KubeRay RayJob manifest (`ray.io/v1`).

No I/O here: the reconciler fetches the inputs, this module turns them into a plain dict,
and unit tests check it on plain data. Integration tests send every shape it builds to an
apiserver carrying KubeRay's own CRD and compare what reads back (a pruned field is a
misspelt one).
"""

from __future__ import annotations

import hashlib
from typing import Any

from tuneforge.api import API_VERSION, KIND, FineTuneJob
from tuneforge.api.runtime import TRAINER_CACHE_ENV, ModelCache, TrainingRuntime
from tuneforge_operator.entrypoint import build_entrypoint

RAYJOB_API_VERSION = "ray.io/v1"
RAYJOB_GROUP, RAYJOB_VERSION, RAYJOB_PLURAL = "ray.io", "v1", "rayjobs"
MAX_RAYJOB_NAME = 47
"""KubeRay refuses longer RayJob names (it derives RayCluster and Service names from them)."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "tuneforge-operator"
JOB_NAME_LABEL = "tuneforge.io/job-name"
JOB_UID_LABEL = "tuneforge.io/job-uid"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
WORKER_GROUP = "workers"
MODEL_CACHE_VOLUME = "model-cache"
TMP_VOLUME = "tmp"
"""The writable `/tmp` of every Ray container (Ray's session folder; also `HOME`): the root
file system is read-only."""
SUBMITTER_CONTAINER = "ray-job-submitter"
SUBMITTER_RESOURCES = {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"}
RAY_AUTH_OPTIONS = {"mode": "token"}
"""KubeRay's token authentication (KubeRay >= 1.5, Ray >= 2.52): KubeRay makes a Secret per
cluster and gives its pods and the submitter the token; GCS, dashboard and client refuse
callers without it."""
MUTABLE_SPEC_FIELDS = frozenset({"suspend"})
"""FineTuneJob spec fields the operator still applies once the RayJob exists."""


def rayjob_name(job_name: str) -> str:
    """The RayJob's deterministic name: the job's name, shortened with a hash if too long."""
    if len(job_name) <= MAX_RAYJOB_NAME:
        return job_name
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:8]
    return f"{job_name[: MAX_RAYJOB_NAME - 9].rstrip('-')}-{digest}"


def trainer_job_manifest(job: FineTuneJob) -> dict[str, Any]:
    """What the trainer receives: apiVersion, kind, the identifying metadata and the full spec."""
    meta = job.metadata
    metadata: dict[str, Any] = {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid}
    if meta.generation is not None:
        metadata["generation"] = meta.generation
    if meta.labels:
        metadata["labels"] = dict(meta.labels)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "spec": job.spec.to_wire(),
    }


def owner_reference(job: FineTuneJob) -> dict[str, Any]:
    """The controller owner reference that makes the RayJob garbage-collected with the job."""
    if not job.metadata.uid:
        raise ValueError("metadata.uid is empty: build RayJobs only from jobs read from the API")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _env(runtime: TrainingRuntime) -> tuple[list[Any], list[Any]]:
    """The runtime's environment: the job itself travels only in the entrypoint's JSON."""
    variables = {"HOME": "/tmp", **runtime.env, TRAINER_CACHE_ENV: runtime.model_cache.mount_path}
    env = [{"name": name, "value": value} for name, value in sorted(variables.items())]
    env_from = [
        {"secretRef": {"name": secret}}
        for secret in (runtime.s3_secret_ref, runtime.mlflow_secret_ref)
        if secret
    ]
    return env, env_from


def model_cache_volume(cache: ModelCache) -> dict[str, Any]:
    """The model-cache volume: the runtime's claim or hostPath, else a size-limited emptyDir."""
    if cache.persistent_volume_claim:
        return {
            "name": MODEL_CACHE_VOLUME,
            "persistentVolumeClaim": {"claimName": cache.persistent_volume_claim},
        }
    if cache.host_path:
        return {
            "name": MODEL_CACHE_VOLUME,
            "hostPath": {"path": cache.host_path, "type": "DirectoryOrCreate"},
        }
    return {"name": MODEL_CACHE_VOLUME, "emptyDir": {"sizeLimit": cache.size_limit}}


def _volumes(runtime: TrainingRuntime) -> tuple[list[Any], list[Any]]:
    """Volumes and mounts of every Ray container: the model cache, and `/dev/shm` if sized."""
    volumes = [model_cache_volume(runtime.model_cache), {"name": TMP_VOLUME, "emptyDir": {}}]
    mounts = [
        {"name": MODEL_CACHE_VOLUME, "mountPath": runtime.model_cache.mount_path},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    if runtime.shm_size:
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": runtime.shm_size}}
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def container_security_context() -> dict[str, Any]:
    """Every Ray container: no privilege escalation, no capabilities, a read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security_context(runtime: TrainingRuntime) -> dict[str, Any]:
    """Every Ray pod: the runtime's non-root uid/gid and the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": runtime.run_as_user,
        "runAsGroup": runtime.run_as_group,
        "fsGroup": runtime.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _with_disk(amounts: dict[str, Any], runtime: TrainingRuntime) -> dict[str, Any]:
    """Requests and limits of a Ray container: `amounts` for both, plus the runtime's disk."""
    disk = runtime.ephemeral_storage
    return {
        "requests": {**amounts, "ephemeral-storage": disk.request},
        "limits": {**amounts, "ephemeral-storage": disk.limit},
    }


def _pod_template(
    job: FineTuneJob,
    runtime: TrainingRuntime,
    container_name: str,
    resources: dict[str, Any],
    node_selector: dict[str, str],
    tolerate: bool,
) -> dict[str, Any]:
    env, env_from = _env(runtime)
    volumes, mounts = _volumes(runtime)
    container: dict[str, Any] = {
        "name": container_name,
        "image": runtime.image,
        "imagePullPolicy": runtime.image_pull_policy,
        "resources": resources,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    if env_from:
        container["envFrom"] = env_from
    if container_name == "ray-head":
        container["ports"] = [
            {"name": "gcs-server", "containerPort": 6379},
            {"name": "dashboard", "containerPort": 8265},
            {"name": "client", "containerPort": 10001},
        ]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(runtime),
    }
    if runtime.service_account_name:
        pod_spec["serviceAccountName"] = runtime.service_account_name
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    if tolerate and runtime.tolerations:
        pod_spec["tolerations"] = [t.to_wire() for t in runtime.tolerations]
    if runtime.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in runtime.image_pull_secrets]
    if runtime.priority_class_name:
        pod_spec["priorityClassName"] = runtime.priority_class_name
    labels = {**runtime.pod_labels, JOB_NAME_LABEL: job.metadata.name}
    metadata: dict[str, Any] = {"labels": labels}
    if runtime.pod_annotations:
        metadata["annotations"] = dict(runtime.pod_annotations)
    return {"metadata": metadata, "spec": pod_spec}


def _worker_resources(job: FineTuneJob, runtime: TrainingRuntime) -> dict[str, Any]:
    res = job.spec.resources
    amounts: dict[str, Any] = {"cpu": str(res.cpus_per_worker), "memory": res.memory_per_worker}
    if res.gpus_per_worker:
        amounts[runtime.gpu_resource_name] = str(res.gpus_per_worker)
    return _with_disk(amounts, runtime)


def build_ray_cluster_spec(job: FineTuneJob, runtime: TrainingRuntime) -> dict[str, Any]:
    """KubeRay's `rayClusterSpec`: a head (driver only) and one group of training workers."""
    res = job.spec.resources
    head_resources = _with_disk({"cpu": runtime.head.cpu, "memory": runtime.head.memory}, runtime)
    worker_start: dict[str, str] = {"num-cpus": str(res.cpus_per_worker)}
    if res.gpus_per_worker:
        # Ray only auto-detects nvidia.com/gpu; say it explicitly for any resource name.
        worker_start["num-gpus"] = str(res.gpus_per_worker)
    return {
        "rayVersion": runtime.ray_version,
        "authOptions": dict(RAY_AUTH_OPTIONS),
        "headGroupSpec": {
            # num-cpus 0: training workers never land on the head. The dashboard listens on
            # the pod address because KubeRay's operator and submitter call it through the head
            # Service; the token and the chart's NetworkPolicy guard it.
            "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
            "template": _pod_template(
                job, runtime, "ray-head", head_resources, runtime.head_node_selector, False
            ),
        },
        "workerGroupSpecs": [
            {
                "groupName": WORKER_GROUP,
                "replicas": res.workers,
                "minReplicas": res.workers,
                "maxReplicas": res.workers,
                "rayStartParams": worker_start,
                "template": _pod_template(
                    job,
                    runtime,
                    "ray-worker",
                    _worker_resources(job, runtime),
                    runtime.node_selector,
                    True,
                ),
            }
        ],
    }


def build_submitter_pod_template(job: FineTuneJob, runtime: TrainingRuntime) -> dict[str, Any]:
    """KubeRay's submitter pod, hardened like the Ray pods (KubeRay fills in its command)."""
    container = {
        "name": SUBMITTER_CONTAINER,
        "image": runtime.image,
        "imagePullPolicy": runtime.image_pull_policy,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": dict(SUBMITTER_RESOURCES), "limits": dict(SUBMITTER_RESOURCES)},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}],
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(runtime),
    }
    if runtime.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in runtime.image_pull_secrets]
    labels = {**runtime.pod_labels, JOB_NAME_LABEL: job.metadata.name}
    return {"metadata": {"labels": labels}, "spec": spec}


def kueue_queue(job: FineTuneJob, runtime: TrainingRuntime) -> str | None:
    """The Kueue LocalQueue of the job's RayJob: the job's own `queueName`, else its runtime's."""
    return job.spec.queue_name or runtime.queue_name


def initial_suspend(job: FineTuneJob, runtime: TrainingRuntime) -> bool:
    """`spec.suspend` of a new RayJob. Kueue admits queued jobs by un-suspending them."""
    return job.spec.suspend or kueue_queue(job, runtime) is not None


def build_rayjob(job: FineTuneJob, runtime: TrainingRuntime) -> dict[str, Any]:
    """The RayJob for this job, owned by it (pure; deterministic for the same inputs)."""
    spec = job.spec
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        JOB_NAME_LABEL: job.metadata.name,
        JOB_UID_LABEL: job.metadata.uid or "",
    }
    queue = kueue_queue(job, runtime)
    if queue:
        labels[KUEUE_QUEUE_LABEL] = queue
    rayjob_spec: dict[str, Any] = {
        "entrypoint": build_entrypoint(trainer_job_manifest(job)),
        "metadata": {"tuneforge.io/job-name": job.metadata.name},
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
        "backoffLimit": spec.backoff_limit,
        "suspend": initial_suspend(job, runtime),
        "rayClusterSpec": build_ray_cluster_spec(job, runtime),
        "submitterPodTemplate": build_submitter_pod_template(job, runtime),
    }
    if spec.active_deadline_seconds is not None:
        rayjob_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": RAYJOB_API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": rayjob_name(job.metadata.name),
            "namespace": job.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(job)],
        },
        "spec": rayjob_spec,
    }


def changed_immutable_fields(
    applied_spec: dict[str, Any], wanted_spec: dict[str, Any]
) -> list[str]:
    """Top-level spec fields that differ from what the RayJob was built from, except mutable ones."""
    keys = (set(applied_spec) | set(wanted_spec)) - MUTABLE_SPEC_FIELDS
    return sorted(f"spec.{k}" for k in keys if applied_spec.get(k) != wanted_spec.get(k))
