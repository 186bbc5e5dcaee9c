"""A FineTuneJob applied to the real node goes through the operator pod to `Succeeded`.

The chart is installed with the local operator and trainer images, the tier's S3 and MLflow
(tests/cluster/pod_services.py) as its endpoints and credentials, and a `default` runtime
sized for this node. The FineTuneJob is applied like `kubectl apply`; the operator pod (under
its ServiceAccount and RBAC) creates the RayJob; the RayJob stand-in (kuberay_rayjob_pods.py,
NOT KubeRay) runs it on a head and two worker pods through KubeRay's submitter Job; the
operator follows the RayJob, finds the version in MLflow and reports the job Succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.chart_release import install_chart, ready_operator
from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.operator_pod_job import (
    FinishedJob,
    chart_values,
    finetunejob,
    run_finetunejob,
)
from tests.cluster.ray_pods import trainer_image
from tests.fixtures.services import MlflowService

pytestmark = pytest.mark.cluster

REGISTERED_MODEL = "tiny-operator-pods"
JOB_NAME = "tiny-op"


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
        chart_values(jobs, pod_services, trainer),
    )  # fmt: skip
    ready_operator(node_cluster, release)
    standin = PodsRayJobStandIn(kube, jobs).start()
    try:
        yield run_finetunejob(
            node_cluster, standin, jobs, release, finetunejob(JOB_NAME, REGISTERED_MODEL)
        )
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
