"""A FineTuneJob applied to the real node goes through the operator pod to `Succeeded`.

The chart is installed with the local operator and trainer images, the tier's S3 and MLflow
(tests/cluster/pod_services.py) as its endpoints and credentials, and a `default` runtime
sized for this node. The FineTuneJob is applied like `kubectl apply`; the operator pod (under
its ServiceAccount and RBAC) creates the RayJob; the RayJob stand-in (kuberay_rayjob_pods.py,
NOT KubeRay) runs it on a head and two worker pods through KubeRay's submitter Job; the
operator follows the RayJob, finds the version in MLflow and reports the job Succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster.chart_release import install_chart, ready_operator
from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.ray_job_spec import HEAD_MEMORY, WORKER_MEMORY, WORKERS, s3_job_spec
from tests.cluster.ray_pods import pod_log, pods_memory_mb, trainer_image
from tests.fixtures.services import MlflowService

pytestmark = pytest.mark.cluster

REGISTERED_MODEL = "tiny-operator-pods"
JOB_NAME = "tiny-op"
JOB_TIMEOUT_S = 1500
TELEMETRY_OFF = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                 "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}  # fmt: skip


def _values(jobs: str, mlflow: MlflowService, trainer: Any) -> dict[str, Any]:
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


def _manifest() -> dict[str, Any]:
    spec = {
        "method": "lora",
        **s3_job_spec(REGISTERED_MODEL),
        "resources": {"workers": WORKERS, "gpusPerWorker": 0, "cpusPerWorker": 1,
                      "memoryPerWorker": WORKER_MEMORY},
    }  # fmt: skip
    return {"apiVersion": "tuneforge.io/v1alpha1", "kind": "FineTuneJob",
            "metadata": {"name": JOB_NAME}, "spec": spec}  # fmt: skip


@dataclass
class FinishedJob:
    """The FineTuneJob and its RayJob as they stood at the end."""

    job: dict[str, Any]
    rayjob: dict[str, Any]
    submitter_log: str
    operator_log: str

    def condition(self, type_: str) -> dict[str, Any]:
        for item in (self.job.get("status") or {}).get("conditions") or []:
            if item.get("type") == type_:
                return dict(item)
        return {}


def _operator_log(node_cluster: NodeCluster, namespace: str) -> str:
    pods = node_cluster.kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io/component=operator",
    ).body["items"]
    return "\n".join(pod_log(node_cluster.kube, namespace, p["metadata"]["name"]) for p in pods)


@pytest.fixture(scope="module")
def finished(
    node_cluster: NodeCluster,
    pod_services: MlflowService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FinishedJob]:
    """The FineTuneJob applied in a watched namespace and followed until it finished."""
    kube = node_cluster.kube
    trainer = trainer_image(node_cluster)
    jobs = kube.create_namespace("jobs")
    release = kube.create_namespace("tuneforge")
    install_chart(
        node_cluster, release, tmp_path_factory.mktemp("release"),
        _values(jobs, pod_services, trainer),
    )  # fmt: skip
    ready_operator(node_cluster, release)
    standin = PodsRayJobStandIn(kube, jobs).start()
    base = f"/apis/tuneforge.io/v1alpha1/namespaces/{jobs}/finetunejobs"
    try:
        created = kube.request("POST", base, _manifest())
        assert created.status == 201, created.body
        started, deadline = time.monotonic(), time.monotonic() + JOB_TIMEOUT_S
        while True:
            job = kube.request("GET", f"{base}/{JOB_NAME}").body
            summary = next(
                (c for c in (job.get("status") or {}).get("conditions") or []
                 if c["type"] == "Succeeded" and c["status"] in ("True", "False")),
                None,
            )  # fmt: skip
            if summary is not None:
                break
            assert time.monotonic() < deadline, (
                f"FineTuneJob not finished: {job.get('status')}\n{standin.transitions}\n"
                f"{_operator_log(node_cluster, release)[-4000:]}"
            )
            time.sleep(5)
        print(f"FineTuneJob finished after {time.monotonic() - started:.0f} s; "
              f"pods use {pods_memory_mb(node_cluster)} MB")  # fmt: skip
        rayjob_name = (job.get("status") or {}).get("rayJobName", "")
        rayjob = kube.request("GET", f"/apis/ray.io/v1/namespaces/{jobs}/rayjobs/{rayjob_name}")
        yield FinishedJob(
            job, dict(rayjob.body), standin.entrypoint_log(rayjob_name),
            _operator_log(node_cluster, release),
        )  # fmt: skip
    finally:
        standin.stop()
        kube.delete_namespace(jobs)
        kube.delete_namespace(release)


def test_the_operator_pod_takes_the_job_to_succeeded(finished: FinishedJob) -> None:
    succeeded = finished.condition("Succeeded")
    assert succeeded.get("status") == "True", (
        f"{finished.job.get('status')}\n--- submitter ---\n{finished.submitter_log[-6000:]}\n"
        f"--- operator ---\n{finished.operator_log[-4000:]}"
    )
    owner = finished.rayjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("FineTuneJob", JOB_NAME)
    status = finished.rayjob["status"]
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Complete", "SUCCEEDED")


def test_the_registered_version_is_the_one_the_job_reports(
    finished: FinishedJob, pod_services: MlflowService
) -> None:
    from mlflow.tracking import MlflowClient

    assert finished.condition("Succeeded").get("status") == "True", finished.job.get("status")
    version = MlflowClient(pod_services.tracking_uri).get_model_version_by_alias(
        REGISTERED_MODEL, "candidate"
    )
    reported = (finished.job.get("status") or {}).get("mlflow") or {}
    assert (reported.get("modelName"), reported.get("modelVersion")) == (
        REGISTERED_MODEL, version.version,
    ), finished.job.get("status")  # fmt: skip
    assert reported.get("runId") == version.run_id
