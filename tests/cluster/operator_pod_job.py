"""A tiny LoRA FineTuneJob through the operator pod on the real node, shared by the modules
that need a trained and registered version (test_operator_pod_job.py, test_serving_pods.py).

`chart_values` are the chart's values for this node (the tier's S3 and MLflow as endpoints and
credentials, a `default` runtime sized for the node); `finetunejob` is the manifest that
`kubectl apply` would send; `run_finetunejob` applies it, follows it until the operator writes
`Succeeded` and returns the job, its RayJob and the logs. The RayJob itself is run by the
caller's PodsRayJobStandIn (kuberay_rayjob_pods.py, NOT KubeRay).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.ray_job_spec import HEAD_MEMORY, WORKER_MEMORY, WORKERS, s3_job_spec
from tests.cluster.ray_pods import pod_log, pods_memory_mb
from tests.fixtures.services import MlflowService

JOB_TIMEOUT_S = 1500
TELEMETRY_OFF = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                 "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}  # fmt: skip


def chart_values(jobs: str, mlflow: MlflowService, trainer: Any) -> dict[str, Any]:
    """The chart's values for this node: endpoints, credentials, a small CPU runtime."""
    s3 = mlflow.s3
    return {
        "operator": {"watchNamespaces": [jobs]},
        "s3": {"endpoint": s3.url, "region": "us-east-1", "accessKeyId": s3.access_key,
               "secretAccessKey": s3.secret_key},
        "mlflowTracking": {"uri": mlflow.tracking_uri},
        "trainer": {"image": {"repository": trainer.repository, "tag": trainer.tag}},
        "runtimes": {"default": {
            "imagePullPolicy": "Never", "tolerations": [], "env": TELEMETRY_OFF,
            "head": {"cpu": "300m", "memory": HEAD_MEMORY}, "shmSize": "256Mi",
            "modelCache": {"sizeLimit": "2Gi"},
            "ephemeralStorage": {"request": "1Gi", "limit": "4Gi"},
        }},
    }  # fmt: skip


def finetunejob(name: str, registered_model: str) -> dict[str, Any]:
    """The tiny two-worker CPU LoRA FineTuneJob registering `registered_model@candidate`."""
    spec = {
        "method": "lora",
        **s3_job_spec(registered_model),
        "resources": {"workers": WORKERS, "gpusPerWorker": 0, "cpusPerWorker": 1,
                      "memoryPerWorker": WORKER_MEMORY},
    }  # fmt: skip
    return {"apiVersion": "tuneforge.io/v1alpha1", "kind": "FineTuneJob",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


@dataclass
class FinishedJob:
    """The FineTuneJob and its RayJob as they stood at the end."""

    job: dict[str, Any]
    rayjob: dict[str, Any]
    submitter_log: str
    operator_log: str
    seconds: float
    """From the FineTuneJob's creation to its `Succeeded` condition."""

    def condition(self, type_: str) -> dict[str, Any]:
        for item in (self.job.get("status") or {}).get("conditions") or []:
            if item.get("type") == type_:
                return dict(item)
        return {}


def operator_log(node_cluster: NodeCluster, namespace: str) -> str:
    """The operator pods' logs."""
    pods = node_cluster.kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io/component=operator",
    ).body["items"]
    return "\n".join(pod_log(node_cluster.kube, namespace, p["metadata"]["name"]) for p in pods)


def run_finetunejob(
    node_cluster: NodeCluster, standin: PodsRayJobStandIn, jobs: str, release: str,
    manifest: dict[str, Any],
) -> FinishedJob:  # fmt: skip
    """Create `manifest` in `jobs` and follow it until its `Succeeded` condition is decided."""
    kube = node_cluster.kube
    name = manifest["metadata"]["name"]
    base = f"/apis/tuneforge.io/v1alpha1/namespaces/{jobs}/finetunejobs"
    created = kube.request("POST", base, manifest)
    assert created.status == 201, created.body
    started, deadline = time.monotonic(), time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = kube.request("GET", f"{base}/{name}").body
        summary = next(
            (c for c in (job.get("status") or {}).get("conditions") or []
             if c["type"] == "Succeeded" and c["status"] in ("True", "False")),
            None,
        )  # fmt: skip
        if summary is not None:
            break
        assert time.monotonic() < deadline, (
            f"FineTuneJob not finished: {job.get('status')}\n{standin.transitions}\n"
            f"{operator_log(node_cluster, release)[-4000:]}"
        )
        time.sleep(5)
    seconds = time.monotonic() - started
    print(f"FineTuneJob finished after {seconds:.0f} s; pods use {pods_memory_mb(node_cluster)} MB")
    rayjob_name = (job.get("status") or {}).get("rayJobName", "")
    rayjob = kube.request("GET", f"/apis/ray.io/v1/namespaces/{jobs}/rayjobs/{rayjob_name}")
    return FinishedJob(
        job, dict(rayjob.body), standin.entrypoint_log(rayjob_name),
        operator_log(node_cluster, release), seconds,
    )  # fmt: skip
