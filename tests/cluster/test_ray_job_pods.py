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

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.node_cluster import NodeCluster
from tests.cluster.pod_jobs import PodJob, pod_job_run
from tests.cluster.ray_job_spec import WORKERS, s3_job_spec, tiny_job
from tests.fixtures.services import MlflowService
from tuneforge.api import FineTuneJob

pytestmark = pytest.mark.cluster

REGISTERED_MODEL = "tiny-pods"


@pytest.fixture(scope="module")
def pod_job(node_cluster: NodeCluster, pod_services: MlflowService) -> Iterator[PodJob]:
    """The tiny job's RayJob run to its end by the RayJob stand-in on real Ray pods."""

    def job_for(namespace: str) -> FineTuneJob:
        return tiny_job(namespace, **s3_job_spec(REGISTERED_MODEL))

    with pod_job_run(node_cluster, pod_services, job_for) as finished:
        yield finished


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
