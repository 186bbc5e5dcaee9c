"""A worker pod deleted mid-training: the job resumes from its checkpoint and succeeds.

The tiny LoRA job trains 32 steps on two worker pods with a checkpoint every 4 steps. Once its
first checkpoint is in S3, one worker pod is deleted (its raylet and Ray Train worker die with
it). The RayJob stand-in re-creates the pod as KubeRay's RayCluster controller does; Ray Train
(`FailureConfig.max_failures`) restarts the worker group when the new pod has joined and
resumes from the latest checkpoint. The job ends Succeeded with one registered version, and
its step metrics show training restarted after a checkpoint, never from step 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.cluster.kuberay_rayjob_pods import PodsRayJobStandIn
from tests.cluster.node_cluster import NodeCluster
from tests.cluster.pod_jobs import TRAINING_TIMEOUT_S, PodJob, pod_job_run
from tests.cluster.ray_job_spec import s3_job_spec, tiny_job
from tests.fixtures.services import MlflowService
from tuneforge.api import FineTuneJob

pytestmark = pytest.mark.cluster

REGISTERED_MODEL = "tiny-pods-killed"
STEPS, CHECKPOINT_EVERY = 32, 4
CHECKPOINT_BUCKET = "tuneforge-checkpoints"


def _kill_a_worker_after_the_first_checkpoint(
    mlflow: MlflowService, killed: list[str]
) -> Callable[[PodsRayJobStandIn, str], None]:
    """A `during` for pod_job_run: delete one worker pod as soon as the job's first
    checkpoint is in S3 (a new run folder holding a `checkpoint_` object)."""

    def during(standin: PodsRayJobStandIn, name: str) -> None:
        client = mlflow.s3.client()
        before = set()
        if client.bucket_exists(CHECKPOINT_BUCKET):
            before = {o.object_name for o in client.list_objects(CHECKPOINT_BUCKET, "runs/")}
        deadline = time.monotonic() + TRAINING_TIMEOUT_S
        while time.monotonic() < deadline and not standin._stop.is_set():
            if client.bucket_exists(CHECKPOINT_BUCKET):
                runs = {o.object_name for o in client.list_objects(CHECKPOINT_BUCKET, "runs/")}
                for run in runs - before:
                    if any("checkpoint_" in o.object_name
                           for o in client.list_objects(CHECKPOINT_BUCKET, run)):  # fmt: skip
                        cluster = standin.clusters[name]
                        victim = cluster.pods("worker")[0]["metadata"]["name"]
                        path = f"/api/v1/namespaces/{standin.namespace}/pods/{victim}"
                        standin.kube.request("DELETE", f"{path}?gracePeriodSeconds=0")
                        killed.append(victim)
                        return
            time.sleep(1)

    return during


@pytest.fixture(scope="module")
def killed_run(
    node_cluster: NodeCluster, pod_services: MlflowService
) -> Iterator[tuple[PodJob, list[str]]]:
    killed: list[str] = []

    def job_for(namespace: str) -> FineTuneJob:
        spec = s3_job_spec(REGISTERED_MODEL, maxSteps=STEPS, checkpointEverySteps=CHECKPOINT_EVERY)
        return tiny_job(namespace, name="tiny-killed", uid="5d0c6c1e-0000-4000-8000-00000000001b",
                        **spec)  # fmt: skip

    during = _kill_a_worker_after_the_first_checkpoint(pod_services, killed)
    with pod_job_run(node_cluster, pod_services, job_for, during) as finished:
        yield finished, killed


def test_a_deleted_worker_pod_is_recreated_and_the_job_succeeds(
    killed_run: tuple[PodJob, list[str]],
) -> None:
    finished, killed = killed_run
    assert killed, "no worker pod was deleted: the job ended before its first checkpoint?"
    assert finished.succeeded, f"{finished.status}\n{finished.submitter_log[-12000:]}"
    assert finished.recreated_workers, "the stand-in never re-created the deleted worker"
    assert killed[0] not in finished.recreated_workers


def test_training_resumed_from_a_checkpoint_and_registered_once(
    killed_run: tuple[PodJob, list[str]], pod_services: MlflowService
) -> None:
    from mlflow.tracking import MlflowClient

    finished, _ = killed_run
    assert finished.succeeded, finished.status
    client = MlflowClient(pod_services.tracking_uri)
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
    assert [v.version for v in versions] == ["1"]
    history = sorted(
        client.get_metric_history(versions[0].run_id, "step"), key=lambda m: m.timestamp
    )
    steps = [m.step for m in history]
    assert sorted(set(steps)) == list(range(1, STEPS + 1)), steps
    repeated = sorted({s for s in steps if steps.count(s) > 1})
    # The kill stops the whole group; it restarts from a checkpoint (step 4, 8, ...), so any
    # step trained twice comes after one, never from step 1.
    if repeated:
        assert repeated[0] > 1 and (repeated[0] - 1) % CHECKPOINT_EVERY == 0, steps
