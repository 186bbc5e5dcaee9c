"""The SDK's Kubernetes backend against the real operator, the test apiserver and real MLflow.

`tuneforge.Client(backend="kubernetes")` submits a FineTuneJob; the real operator
(`python -m tuneforge_operator`, one per module, watching one namespace) creates the RayJob;
the KubeRay stand-in (NOT KubeRay: it only writes RayJob status) drives it; the trainer's
side is a real MLflow run and model version tagged with the job's uid, as the trainer
writes them. Nothing here writes FineTuneJob status: what the SDK reads is what the operator
wrote. There is no kubelet, so no pod ever runs: the log tests cover waiting while there is
no pod, ending with the job, and a typed error when the apiserver cannot serve a pod's log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.operator.harness import (
    OperatorProcess,
    get_rayjob,
    install_runtimes,
    wait_until,
)
from tuneforge.api import FineTuneJob
from tuneforge.client import Client, JobProgress, JobState, lora_job
from tuneforge.errors import (
    BackendError,
    JobExistsError,
    JobFailedError,
    JobNotFoundError,
    WaitTimeoutError,
)
from tuneforge.settings import Settings

pytestmark = pytest.mark.integration

MODEL = "sdk-toy-lora"
STEPS = 40


@pytest.fixture(scope="module")
def namespace(kube: KubeCluster) -> Iterator[str]:
    """One namespace for the module's operator, stand-in and jobs."""
    name = kube.create_namespace("t-sdk-kubernetes")
    yield name
    kube.delete_namespace(name)


@pytest.fixture(scope="module")
def operator(
    kube: KubeCluster,
    namespace: str,
    mlflow_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The real operator, reading progress and versions from the test MLflow server."""
    install_runtimes(kube, namespace)
    process = OperatorProcess(
        kube,
        namespace,
        tmp_path_factory.mktemp("operator"),
        {
            "TUNEFORGE_OPERATOR_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
            # A job whose RayJob succeeded without a registered version fails soon.
            "TUNEFORGE_OPERATOR_REGISTRATION_GRACE_SECONDS": "5",
        },
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def standin(kube: KubeCluster, namespace: str) -> Iterator[KubeRayStandIn]:
    """KubeRay stood in for: RayJobs stay Running until a test sets their outcome."""
    driver = KubeRayStandIn(kube, namespace, outcome="hold").start()
    yield driver
    driver.stop()


@pytest.fixture
def client(
    kube: KubeCluster,
    namespace: str,
    operator: OperatorProcess,
    standin: KubeRayStandIn,
    request: pytest.FixtureRequest,
) -> Iterator[Client]:
    """A Client on the Kubernetes backend; the operator's log is shown when a test fails."""
    failed_before = request.session.testsfailed
    yield Client(
        Settings(namespace=namespace, kubeconfig=str(kube.kubeconfig)), backend="kubernetes"
    )
    if request.session.testsfailed > failed_before:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\n--- operator log ({namespace}) ---\n{operator.log()}")


def _job(name: str, team: str = "vision") -> FineTuneJob:
    return lora_job(
        name,
        "s3://data/toy",
        "a photo of sks toy",
        registered_model=MODEL,
        steps=STEPS,
        labels={"team": team},
    )


def _rayjob(kube: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        f"the operator to create RayJob {name}", lambda: get_rayjob(kube, namespace, name)
    )
    return found


def _wait_for_state(client: Client, name: str, state: JobState) -> JobProgress:
    progress: JobProgress = wait_until(
        f"job {name} to be {state.value}",
        lambda: (p := client.progress(name)).state == state and p,
    )
    return progress


def test_submit_get_list_and_delete_garbage_collects_the_rayjob(
    client: Client, kube: KubeCluster, namespace: str
) -> None:
    assert client.submit(_job("alpha")) == "alpha"
    client.submit(_job("beta", team="audio"))
    with pytest.raises(JobExistsError, match="already exists"):
        client.submit(_job("alpha"))
    job = client.get("alpha")
    assert job.metadata.uid and job.metadata.namespace == namespace
    assert job.spec.output.registered_model == MODEL
    assert [j.name for j in client.list()] == ["alpha", "beta"]
    assert [j.name for j in client.list("team=audio")] == ["beta"]

    rayjob = _rayjob(kube, namespace, "alpha")
    assert [o["uid"] for o in rayjob["metadata"]["ownerReferences"]] == [job.metadata.uid]
    assert client.get("alpha").status.ray_job_name == "alpha"  # type: ignore[union-attr]

    client.delete("alpha")
    with pytest.raises(JobNotFoundError):
        client.get("alpha")
    with pytest.raises(JobNotFoundError):
        client.delete("alpha")
    wait_until(
        "RayJob alpha to be garbage-collected",
        lambda: get_rayjob(kube, namespace, "alpha") is None,
        90,
    )
    assert [j.name for j in client.list()] == ["beta"]
    assert get_rayjob(kube, namespace, "beta") is not None
    client.delete("beta")


def test_wait_reports_progress_and_returns_the_registered_version(
    client: Client,
    standin: KubeRayStandIn,
    namespace: str,
    mlflow_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training reported through MLflow reaches the callback; the version reaches status."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    for key, value in mlflow_server.env().items():
        monkeypatch.setenv(key, value)
    mlflow = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    name = client.submit(_job("gamma"))
    uid = client.get(name).metadata.uid
    experiment = mlflow.create_experiment(f"sdk-it-{namespace}")
    run_ids: list[str] = []
    versions: list[str] = []
    seen: list[JobProgress] = []

    def trainer_side(progress: JobProgress) -> None:
        """Act as the trainer does, in step with what `wait` reports."""
        seen.append(progress)
        if progress.state == JobState.RUNNING and not run_ids:
            run = mlflow.create_run(experiment, tags={"tuneforge.job_uid": uid})
            run_ids.append(run.info.run_id)
            now_ms = int(time.time() * 1000)
            metrics = {"step": 10, "loss": 0.25, "images_per_s": 2.0}
            mlflow.log_batch(
                run.info.run_id, metrics=[Metric(k, v, now_ms, 10) for k, v in metrics.items()]
            )
        if progress.state == JobState.RUNNING and progress.step == 10 and not versions:
            mlflow.create_registered_model(MODEL)
            version = mlflow.create_model_version(
                MODEL,
                f"{mlflow.get_run(run_ids[0]).info.artifact_uri}/adapter",
                run_id=run_ids[0],
                tags={"tuneforge.job_uid": uid},
            )
            versions.append(str(version.version))
            standin.finish(name, "succeed")

    finished = client.wait(name, timeout=120, callback=trainer_side, poll_interval=0.2)

    assert finished.status is not None and finished.status.mlflow is not None
    assert (finished.status.mlflow.run_id, finished.status.mlflow.model_version) == (
        run_ids[0],
        versions[0],
    )
    assert finished.status.mlflow.model_name == MODEL
    assert finished.status.completion_time
    states = [p.state for p in seen]
    assert states[-1] == JobState.SUCCEEDED and seen[-1].reason == "TrainingSucceeded"
    assert states == sorted(
        states, key=[JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED].index
    )
    stepped = [p for p in seen if p.step == 10]
    assert stepped and (stepped[0].total_steps, stepped[0].percent, stepped[0].loss) == (
        STEPS,
        25,
        0.25,
    )
    assert stepped[0].eta_seconds == 15  # 30 steps left at 2 images/s, batch size 1

    events = client.events(name)
    reasons = [e.reason for e in events]
    assert {"RayJobCreated", "Training", "TrainingSucceeded", "AdapterRegistered"} <= set(reasons)
    assert all(e.source for e in events)
    times = [e.time for e in events]
    assert None not in times and times == sorted(times)  # type: ignore[type-var]


def test_failures_raise_typed_errors_with_reason_and_message(
    client: Client, standin: KubeRayStandIn
) -> None:
    standin.outcomes.update({"app-fails": "fail", "never-submitted": "submission-failed"})
    client.submit(_job("app-fails"))
    client.submit(_job("never-submitted"))

    with pytest.raises(JobFailedError) as app:
        client.wait("app-fails", timeout=90, poll_interval=0.2)
    assert app.value.reason == "AppFailed" and "exit code 1" in app.value.message
    assert app.value.job is not None and app.value.job.name == "app-fails"
    with pytest.raises(JobFailedError) as submission:
        client.wait("never-submitted", timeout=90, poll_interval=0.2)
    assert submission.value.reason == "SubmissionFailed"
    assert "submitter pod exited 1" in submission.value.message
    warnings = [e for e in client.events("app-fails") if e.reason == "AppFailed"]
    assert warnings and warnings[0].type == "Warning"


def test_wait_times_out_on_a_held_job_and_a_follower_ends_when_it_is_deleted(
    client: Client, kube: KubeCluster, namespace: str
) -> None:
    name = client.submit(_job("held"))
    _wait_for_state(client, name, JobState.RUNNING)
    with pytest.raises(WaitTimeoutError) as timeout:
        client.wait(name, timeout=1.0, poll_interval=0.2)
    assert timeout.value.job is not None and timeout.value.job.name == name
    assert client.progress(name).state == JobState.RUNNING

    lines: list[str] = []
    ended = threading.Event()

    def follow() -> None:
        lines.extend(client.logs(name, follow=True))
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    assert not ended.wait(2.5)  # running but no pod yet: the follower waits
    client.delete(name)
    assert ended.wait(60) and lines == []
    wait_until(
        f"RayJob {name} to be garbage-collected",
        lambda: get_rayjob(kube, namespace, name) is None,
        90,
    )


def test_logs_wait_while_there_is_no_pod_and_end_with_the_job(
    client: Client, standin: KubeRayStandIn
) -> None:
    name = client.submit(_job("epsilon"))
    lines: list[str] = []
    done = threading.Event()

    def follow() -> None:
        lines.extend(client.logs(name, follow=True))
        done.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    _wait_for_state(client, name, JobState.RUNNING)
    assert not done.wait(2.5)  # no pod: the iterator waits instead of returning nothing
    assert list(client.logs(name, follow=False)) == []

    standin.finish(name, "fail")
    assert done.wait(90)
    assert lines == [] and client.progress(name).state == JobState.FAILED
    with pytest.raises(JobNotFoundError):
        client.logs("no-such-job")


def test_a_pod_log_the_apiserver_cannot_serve_raises_a_typed_error(
    client: Client, kube: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    """KubeRay's submitter pod, as far as the API says Running, on a node with no kubelet."""
    name = client.submit(_job("orphan-pod"))
    _rayjob(kube, namespace, name)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = f"{name}-submitter"
    created = kube.request(
        "POST",
        pods,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "labels": {"job-name": name}},
            "spec": {
                "nodeName": "no-kubelet",
                "automountServiceAccountToken": False,
                "containers": [{"name": "submitter", "image": "rayproject/ray:test"}],
            },
        },
    )
    assert created.ok, created.message
    running = kube.rest.request(
        "PATCH",
        f"{pods}/{pod}/status",
        {"status": {"phase": "Running"}},
        content_type="application/merge-patch+json",
    )
    assert running.ok, running.message

    for follow in (False, True):
        with pytest.raises(BackendError, match=f"log of pod {pod!r}"):
            list(client.logs(name, follow=follow))
    client.delete(name)
