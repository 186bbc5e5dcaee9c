"""One tiny FineTuneJob's RayJob run on real Ray pods by the RayJob stand-in, end to end.

`pod_job_run(cluster, mlflow, job)` creates a namespace with the platform's S3 and MLflow
Secrets, the operator's RayJob of `job` (built by `tuneforge_operator.builder` on a runtime
with the chart's endpoint env), runs it with `PodsRayJobStandIn` until Complete or Failed, and
yields what happened; everything is deleted at the end. `during(standin, rayjob_name)` runs in
a thread while the job runs (e.g. to kill a worker pod).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.ray_job_spec import tiny_runtime
from tests.cluster.ray_pods import pods_memory_mb, ray_pods_report, trainer_image
from tests.fixtures.services import MlflowService
from tuneforge.api import FineTuneJob
from tuneforge_operator.builder import build_rayjob

READY_TIMEOUT_S = 420
TRAINING_TIMEOUT_S = 900
S3_SECRET, MLFLOW_SECRET = "pods-s3", "pods-mlflow"


@dataclass
class PodJob:
    """The finished RayJob: its status, the submitter's log, where its workers ran."""

    namespace: str
    rayjob: dict[str, Any]
    submitter_log: str
    worker_ips: list[str]
    transitions: list[tuple[str, str, str]]
    recreated_workers: list[str]
    seconds: float

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.rayjob.get("status") or {})

    @property
    def succeeded(self) -> bool:
        return (self.status.get("jobDeploymentStatus"), self.status.get("jobStatus")) == (
            "Complete", "SUCCEEDED",
        )  # fmt: skip


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name}, "stringData": data}  # fmt: skip


def pod_rayjob(job: FineTuneJob, image: str, mlflow: MlflowService) -> dict[str, Any]:
    """The operator's RayJob of `job`, with the chart's endpoint env and Secrets."""
    s3 = mlflow.s3
    env = {**tiny_runtime(image).env, "MLFLOW_TRACKING_URI": mlflow.tracking_uri,
           "TUNEFORGE_S3_ENDPOINT": s3.url, "MLFLOW_S3_ENDPOINT_URL": s3.url,
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    runtime = tiny_runtime(image, env=env, s3SecretRef=S3_SECRET, mlflowSecretRef=MLFLOW_SECRET)
    rayjob = build_rayjob(job, runtime)
    rayjob["metadata"]["ownerReferences"] = []  # no FineTuneJob object in these tests
    return rayjob


def _run_to_the_end(
    cluster: NodeCluster, standin: PodsRayJobStandIn, name: str
) -> tuple[dict[str, Any], list[str]]:
    """The RayJob once Complete or Failed, and the IPs its worker pods had."""
    deadline = time.monotonic() + READY_TIMEOUT_S + TRAINING_TIMEOUT_S
    path = f"/apis/ray.io/v1/namespaces/{standin.namespace}/rayjobs/{name}"
    worker_ips: set[str] = set()
    while True:
        rayjob = cluster.kube.request("GET", path).body
        ray = standin.clusters.get(name)
        if ray is not None:
            worker_ips |= {p["status"]["podIP"] for p in ray.pods("worker")
                           if p["status"].get("podIP")}  # fmt: skip
        if (rayjob.get("status") or {}).get("jobDeploymentStatus") in ("Complete", "Failed"):
            return rayjob, sorted(worker_ips)
        assert time.monotonic() < deadline, (
            f"RayJob {name} not finished: {rayjob.get('status')}\n{standin.transitions}\n"
            f"{standin.entrypoint_log(name)[-6000:]}\n"
            + (ray_pods_report(cluster, ray.pods()) if ray else "")
        )
        time.sleep(3)


@contextmanager
def pod_job_run(
    cluster: NodeCluster,
    mlflow: MlflowService,
    job_for: Callable[[str], FineTuneJob],
    during: Callable[[PodsRayJobStandIn, str], None] | None = None,
) -> Iterator[PodJob]:
    """Run `job_for(namespace)`'s RayJob on pods to its end (see the module docstring)."""
    image = trainer_image(cluster)
    kube = cluster.kube
    namespace = kube.create_namespace("rayjob")
    s3 = mlflow.s3
    for name, data in (
        (S3_SECRET, {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}),
        (MLFLOW_SECRET, {}),
    ):
        created = kube.request(
            "POST", f"/api/v1/namespaces/{namespace}/secrets", _secret(name, data)
        )
        assert created.status == 201, created.body
    rayjob = pod_rayjob(job_for(namespace), image.reference, mlflow)
    created = kube.request("POST", f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs", rayjob)
    assert created.status == 201, created.body
    name = rayjob["metadata"]["name"]
    standin = PodsRayJobStandIn(kube, namespace).start()
    helper = threading.Thread(target=during, args=(standin, name), daemon=True) if during else None
    started = time.monotonic()
    try:
        if helper is not None:
            helper.start()
        finished, worker_ips = _run_to_the_end(cluster, standin, name)
        seconds = time.monotonic() - started
        print(f"RayJob {name} {finished['status'].get('jobDeploymentStatus')} after "
              f"{seconds:.0f} s; pods use {pods_memory_mb(cluster)} MB")  # fmt: skip
        log = standin.entrypoint_log(name)
        ray = standin.clusters.get(name)
        if finished["status"].get("jobStatus") != "SUCCEEDED" and ray is not None:
            log += "\n" + ray_pods_report(cluster, ray.pods())
        yield PodJob(namespace, finished, log, worker_ips, list(standin.transitions),
                     list(standin.recreated_workers), seconds)  # fmt: skip
    finally:
        standin.stop()
        if helper is not None:
            helper.join(timeout=30)
        kube.delete_namespace(namespace)
