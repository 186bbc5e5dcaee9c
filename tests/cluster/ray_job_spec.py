"""The RayJob of a tiny CPU FineTuneJob, built by the operator's own builder for the test node.

`tiny_rayjob(image)` validates a FineTuneJob and a TrainingRuntime with the SDK and returns what
`tuneforge_operator.builder.build_rayjob` makes of them: the same `rayClusterSpec` the operator
pod would write. The one change for this node is `fit_cpu_to_node`, said where it is applied.
"""

from __future__ import annotations

import copy
from typing import Any

from tuneforge.api import FineTuneJob
from tuneforge.api.runtime import TrainingRuntime
from tuneforge_operator.builder import build_rayjob

JOB_UID = "5d0c6c1e-0000-4000-8000-000000000015"
WORKERS = 2
HEAD_MEMORY, WORKER_MEMORY = "3Gi", "2Gi"
"""Memory of the head (GCS, the dashboard and its module processes, the job's driver) and of
each worker (raylet, agents, one Ray Train worker with torch and the tiny model). At 1536Mi the
head's container restarted while the submitted job ran."""
POD_CPU_REQUEST = "300m"
POD_CPU_LIMIT = "2"
"""CPU request and limit of each Ray container on this node (see `fit_cpu_to_node`)."""


def tiny_job(namespace: str, name: str = "tiny", uid: str = JOB_UID, **spec: Any) -> FineTuneJob:
    """A two-worker CPU LoRA job with the smallest resources the API allows."""
    body: dict[str, Any] = {
        "method": "lora",
        "dataset": {"uri": "s3://data/tiny", "instancePrompt": "a photo of sks dog"},
        "output": {"registeredModel": "tiny-pods"},
        "training": {"maxSteps": 4, "batchSize": 1},
        "resources": {"workers": WORKERS, "gpusPerWorker": 0, "cpusPerWorker": 1,
                      "memoryPerWorker": WORKER_MEMORY},
    }  # fmt: skip
    body.update(spec)
    return FineTuneJob.model_validate(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1},
            "spec": body,
        }
    )


def s3_job_spec(registered_model: str, **training: Any) -> dict[str, Any]:
    """`spec` fields of a tiny LoRA job that reads its inputs from the tier's S3
    (tests/cluster/pod_services.py) and registers `registered_model`; `training` overrides."""
    from tests.cluster.pod_services import DATASET_URI, MODEL_URI

    return {
        "baseModel": {"uri": MODEL_URI},
        "dataset": {"uri": DATASET_URI, "instancePrompt": "a photo of sks toy", "resolution": 64},
        "training": {"maxSteps": 4, "batchSize": 1, "learningRate": 0.01, "seed": 0,
                     "mixedPrecision": "no", "checkpointEverySteps": 2, **training},
        "lora": {"rank": 4, "alpha": 4},
        "output": {"registeredModel": registered_model, "alias": "candidate"},
        "backoffLimit": 0,
    }  # fmt: skip


def tiny_runtime(image: str, **overrides: Any) -> TrainingRuntime:
    """A runtime for the local trainer image: small head, small disk, no telemetry."""
    data: dict[str, Any] = {
        "image": image,
        "imagePullPolicy": "Never",
        "rayVersion": "2.60.0",
        "head": {"cpu": "300m", "memory": HEAD_MEMORY},
        "shmSize": "256Mi",
        "ephemeralStorage": {"request": "1Gi", "limit": "4Gi"},
        "modelCache": {"sizeLimit": "2Gi"},
        "env": {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"},
    }  # fmt: skip
    data.update(overrides)
    return TrainingRuntime.model_validate(data)


def tiny_rayjob(namespace: str, image: str) -> dict[str, Any]:
    """The operator's RayJob for `tiny_job` on `tiny_runtime(image)`."""
    return build_rayjob(tiny_job(namespace), tiny_runtime(image))


def fit_cpu_to_node(cluster_spec: dict[str, Any]) -> dict[str, Any]:
    """THE ONE DEVIATION: this node has 2 CPUs and `cpusPerWorker` is an integer >= 1, so two
    workers alone request the whole node and the head cannot be scheduled. Each container
    requests `POD_CPU_REQUEST` and may use the node's 2 CPUs (a 300m limit starves the head's
    GCS and raylet past Ray's start-up timeout); `rayStartParams` (`--num-cpus=1` per worker,
    0 on the head) stay as built, so Ray still sees one CPU per worker."""
    fitted = copy.deepcopy(cluster_spec)
    groups = [fitted["headGroupSpec"], *fitted["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            container["resources"]["requests"]["cpu"] = POD_CPU_REQUEST
            container["resources"]["limits"]["cpu"] = POD_CPU_LIMIT
    return fitted
