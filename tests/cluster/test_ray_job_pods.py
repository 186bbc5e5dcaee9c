"""The tiny LoRA job trained by real Ray pods: KubeRay's submitter Job, a head, two workers.

The operator's builder writes the RayJob (created against KubeRay's CRD); the KubeRay stand-ins
(kuberay_raycluster.py for the cluster, kuberay_submitter.py for the submission; NOT KubeRay)
create the head, two workers and the submitter Job from its own templates. The submitter runs
KubeRay's `ray job submit` against the head's dashboard through the Service's DNS name; the
entrypoint (`python -m tuneforge_trainer run --job '<json>'`) trains over the pod network with
one Ray Train worker on each worker pod, reads the tiny model and images from S3 and writes
checkpoints and the adapter there, and registers the version in MLflow. S3 (SeaweedFS) and the
`mlflow server` run beside the node on its address, which pods reach over their bridge; the
pods get them as a platform's runtime would: endpoints in the runtime's env, credentials from
the Secrets named by `s3SecretRef` and `mlflowSecretRef`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.ray_job_spec import WORKERS, s3_job_spec, tiny_job, tiny_runtime
from tests.cluster.ray_pods import pods_memory_mb, ray_pods_report, trainer_image
from tests.fixtures.services import MlflowService
from tuneforge_operator.builder import build_rayjob

pytestmark = pytest.mark.cluster

REGISTERED_MODEL = "tiny-pods"
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


def _rayjob(namespace: str, image: str, mlflow: MlflowService) -> dict[str, Any]:
    """The operator's RayJob of the tiny job, with the chart's endpoint env and Secrets."""
    s3 = mlflow.s3
    job = tiny_job(namespace, **s3_job_spec(REGISTERED_MODEL))
    runtime = tiny_runtime(image)
    env = {**runtime.env, "MLFLOW_TRACKING_URI": mlflow.tracking_uri,
           "TUNEFORGE_S3_ENDPOINT": s3.url, "MLFLOW_S3_ENDPOINT_URL": s3.url,
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    runtime = tiny_runtime(image, env=env, s3SecretRef=S3_SECRET, mlflowSecretRef=MLFLOW_SECRET)
    return build_rayjob(job, runtime)


def _run_to_the_end(
    node_cluster: NodeCluster, standin: PodsRayJobStandIn, name: str
) -> tuple[dict[str, Any], list[str]]:
    """The RayJob once Complete or Failed, and the IPs its worker pods had."""
    deadline = time.monotonic() + READY_TIMEOUT_S + TRAINING_TIMEOUT_S
    path = f"/apis/ray.io/v1/namespaces/{standin.namespace}/rayjobs/{name}"
    worker_ips: set[str] = set()
    while True:
        rayjob = node_cluster.kube.request("GET", path).body
        cluster = standin.clusters.get(name)
        if cluster is not None:
            worker_ips |= {p["status"]["podIP"] for p in cluster.pods("worker")
                           if p["status"].get("podIP")}  # fmt: skip
        if (rayjob.get("status") or {}).get("jobDeploymentStatus") in ("Complete", "Failed"):
            return rayjob, sorted(worker_ips)
        assert time.monotonic() < deadline, (
            f"RayJob {name} not finished: {rayjob.get('status')}\n{standin.transitions}\n"
            f"{standin.entrypoint_log(name)[-6000:]}\n"
            + (ray_pods_report(node_cluster, cluster.pods()) if cluster else "")
        )
        time.sleep(3)


@pytest.fixture(scope="module")
def pod_job(node_cluster: NodeCluster, pod_services: MlflowService) -> Iterator[PodJob]:
    """The tiny job's RayJob run to its end by the RayJob stand-in on real Ray pods."""
    image = trainer_image(node_cluster)
    kube = node_cluster.kube
    namespace = kube.create_namespace("rayjob")
    s3 = pod_services.s3
    for name, data in (
        (S3_SECRET, {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}),
        (MLFLOW_SECRET, {}),
    ):
        created = kube.request(
            "POST", f"/api/v1/namespaces/{namespace}/secrets", _secret(name, data)
        )
        assert created.status == 201, created.body
    rayjob = _rayjob(namespace, image.reference, pod_services)
    rayjob["metadata"]["ownerReferences"] = []  # no FineTuneJob object in this test
    created = kube.request("POST", f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs", rayjob)
    assert created.status == 201, created.body
    name = rayjob["metadata"]["name"]
    standin = PodsRayJobStandIn(kube, namespace).start()
    started = time.monotonic()
    try:
        finished, worker_ips = _run_to_the_end(node_cluster, standin, name)
        seconds = time.monotonic() - started
        print(f"RayJob {finished['status'].get('jobDeploymentStatus')} after {seconds:.0f} s; "
              f"pods use {pods_memory_mb(node_cluster)} MB")  # fmt: skip
        log = standin.entrypoint_log(name)
        cluster = standin.clusters.get(name)
        if finished["status"].get("jobStatus") != "SUCCEEDED" and cluster is not None:
            log += "\n" + ray_pods_report(node_cluster, cluster.pods())
        yield PodJob(namespace, finished, log, worker_ips, list(standin.transitions), seconds)
    finally:
        standin.stop()
        kube.delete_namespace(namespace)


def test_the_submitter_job_trains_the_tiny_lora_on_the_two_worker_pods(pod_job: PodJob) -> None:
    assert pod_job.succeeded, f"{pod_job.status}\n{pod_job.submitter_log[-12000:]}"
    log = pod_job.submitter_log
    assert f"Job '{pod_job.status['jobId']}' succeeded" in log, log[-4000:]
    assert [t[1:] for t in pod_job.transitions][:2] == [
        ("Initializing", ""),
        ("Running", "PENDING"),
    ]
    assert len(pod_job.worker_ips) == WORKERS
    for ip in pod_job.worker_ips:  # one Ray Train worker on each worker pod
        assert f"ip={ip}" in log, f"no training worker at {ip}:\n{log[-6000:]}"


def test_the_adapter_is_registered_in_mlflow_with_its_checkpoints_in_s3(
    pod_job: PodJob, pod_services: MlflowService, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    assert pod_job.succeeded, pod_job.submitter_log[-4000:]
    client = MlflowClient(pod_services.tracking_uri)
    version = client.get_model_version_by_alias(REGISTERED_MODEL, "candidate")
    assert version.version == "1"
    run = client.get_run(version.run_id)
    assert run.data.tags.get("tuneforge.job_name") == "tiny", run.data.tags
    objects = list(pod_services.s3.client().list_objects("tuneforge-checkpoints", recursive=True))
    names = [o.object_name for o in objects]
    assert any("checkpoint" in n for n in names), names[:20]
