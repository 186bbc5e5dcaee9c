"""The SDK's Kubernetes backend against a real kube-apiserver with the FineTuneJob CRD.

Status is written here through the status subresource exactly as the operator writes it
(the operator has its own tests); what is tested is how the SDK reads, waits and reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from tuneforge.api import (
    GROUP,
    PLURAL,
    VERSION,
    ConditionStatus,
    ConditionType,
    FineTuneJob,
    FineTuneJobStatus,
    MlflowStatus,
    ProgressStatus,
    Reason,
)
from tuneforge.client import Client, JobProgress, JobState, lora_job
from tuneforge.client.kubernetes_backend import without_empty_strings
from tuneforge.errors import JobExistsError, JobFailedError, JobNotFoundError, WaitTimeoutError
from tuneforge.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def client(kube: Any, kube_namespace: str) -> Client:
    """A Client on the Kubernetes backend, configured from the test cluster's kubeconfig."""
    settings = Settings(
        backend="kubernetes", namespace=kube_namespace, kubeconfig=str(kube.kubeconfig)
    )
    return Client(settings)


def _job(name: str, team: str = "vision") -> FineTuneJob:
    return lora_job(
        name,
        "s3://data/toy",
        "a photo of sks toy",
        registered_model="toy-lora",
        steps=4,
        labels={"team": team},
    )


def _write_status(client: Client, name: str, change: Callable[[FineTuneJobStatus], None]) -> None:
    """Update status through the status subresource, as the operator does."""
    custom: Any = client.backend.custom  # type: ignore[attr-defined]
    namespace = client.settings.namespace
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    status = FineTuneJobStatus.model_validate(obj.get("status") or {})
    change(status)
    obj["status"] = without_empty_strings(status.to_wire())  # 1.20 rejects "" messages
    custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, obj)


def test_submit_get_list_and_delete(client: Client) -> None:
    assert client.submit(_job("alpha")) == "alpha"
    client.submit(_job("beta", team="audio"))
    with pytest.raises(JobExistsError, match="already exists"):
        client.submit(_job("alpha"))
    job = client.get("alpha")
    assert job.metadata.uid and job.metadata.namespace == client.settings.namespace
    assert job.spec.output.registered_model == "toy-lora"
    assert [j.name for j in client.list()] == ["alpha", "beta"]
    assert [j.name for j in client.list("team=audio")] == ["beta"]
    client.delete("alpha")
    with pytest.raises(JobNotFoundError):
        client.get("alpha")
    with pytest.raises(JobNotFoundError):
        client.delete("alpha")


def test_wait_reports_progress_and_returns_the_finished_job(client: Client) -> None:
    name = client.submit(_job("gamma"))
    seen: list[JobProgress] = []
    running_seen = threading.Event()

    def callback(progress: JobProgress) -> None:
        seen.append(progress)
        if progress.state == JobState.RUNNING and progress.step == 2:
            running_seen.set()

    def operator_side() -> None:
        def training(status: FineTuneJobStatus) -> None:
            status.ray_job_name = "gamma"
            status.set_condition(ConditionType.TRAINING, ConditionStatus.TRUE, Reason.TRAINING)
            status.progress = ProgressStatus(step=2, total_steps=4, percent=50, loss="0.25")

        def succeeded(status: FineTuneJobStatus) -> None:
            status.set_condition(
                ConditionType.TRAINING, ConditionStatus.FALSE, Reason.TRAINING_SUCCEEDED
            )
            status.set_condition(
                ConditionType.SUCCEEDED, ConditionStatus.TRUE, Reason.ADAPTER_REGISTERED
            )
            status.mlflow = MlflowStatus(run_id="r1", model_name="toy-lora", model_version="1")

        _write_status(client, name, training)
        running_seen.wait(30)
        _write_status(client, name, succeeded)

    writer = threading.Thread(target=operator_side)
    writer.start()
    try:
        finished = client.wait(name, timeout=60, callback=callback, poll_interval=0.1)
    finally:
        writer.join()
    assert finished.status is not None and finished.status.mlflow is not None
    assert finished.status.mlflow.model_version == "1"
    assert seen[0].state == JobState.PENDING
    running = [p for p in seen if p.state == JobState.RUNNING]
    assert running and (running[0].step, running[0].total_steps, running[0].loss) == (2, 4, 0.25)
    assert seen[-1].state == JobState.SUCCEEDED


def test_wait_raises_typed_errors(client: Client) -> None:
    name = client.submit(_job("delta"))
    with pytest.raises(WaitTimeoutError) as timeout:
        client.wait(name, timeout=0.5, poll_interval=0.1)
    assert timeout.value.job is not None and timeout.value.job.name == name

    def failed(status: FineTuneJobStatus) -> None:
        status.set_condition(
            ConditionType.SUCCEEDED, ConditionStatus.FALSE, Reason.APP_FAILED, "entrypoint exited 1"
        )

    _write_status(client, name, failed)
    with pytest.raises(JobFailedError) as failure:
        client.wait(name, timeout=30, poll_interval=0.1)
    assert (failure.value.reason, failure.value.message) == ("AppFailed", "entrypoint exited 1")


def test_logs_wait_while_pending_and_end_with_the_job(client: Client) -> None:
    name = client.submit(_job("epsilon"))
    lines: list[str] = []
    done = threading.Event()

    def follow() -> None:
        lines.extend(client.logs(name, follow=True))
        done.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert not done.wait(2.5)  # no pod yet: the iterator waits instead of returning nothing
    assert list(client.logs(name, follow=False)) == []

    def succeeded(status: FineTuneJobStatus) -> None:
        status.set_condition(
            ConditionType.SUCCEEDED, ConditionStatus.TRUE, Reason.TRAINING_SUCCEEDED
        )

    _write_status(client, name, succeeded)
    assert done.wait(30)
    assert lines == []
    with pytest.raises(JobNotFoundError):
        client.logs("no-such-job")


def test_events_of_the_job_are_listed_oldest_first(client: Client, kube: Any) -> None:
    name = client.submit(_job("zeta"))
    uid = client.get(name).metadata.uid
    namespace = client.settings.namespace
    for index, (reason, message) in enumerate(
        [("RayJobCreated", "Created RayJob zeta"), ("TrainingStarted", "Training")]
    ):
        response = kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{index}"},
                "involvedObject": {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "FineTuneJob",
                    "name": name,
                    "namespace": namespace,
                    "uid": uid,
                },
                "reason": reason,
                "message": message,
                "type": "Normal",
                "source": {"component": "tuneforge-operator"},
                "firstTimestamp": f"2026-01-01T00:00:0{index}Z",
                "lastTimestamp": f"2026-01-01T00:00:0{index}Z",
                "count": 1,
            },
        )
        assert response.status in (200, 201), response
    events = client.events(name)
    assert [(e.reason, e.source) for e in events] == [
        ("RayJobCreated", "tuneforge-operator"),
        ("TrainingStarted", "tuneforge-operator"),
    ]
