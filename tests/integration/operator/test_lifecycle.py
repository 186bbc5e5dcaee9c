"""The operator as a process against kube-apiserver + controller-manager, KubeRay stood in for."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures._kube_cluster import KubeCluster
from tests.fixtures.kuberay_standin import KubeRayStandIn
from tests.integration.operator.harness import (
    JOBS,
    TEST_RUNTIME,
    OperatorProcess,
    condition,
    create_job,
    events,
    get_job,
    get_rayjob,
    install_runtimes,
    job_manifest,
    patch_job,
    rayjobs,
    wait_for_condition,
    wait_until,
)
from tests.integration.operator.test_rayjob_schema import missing_paths
from tuneforge.api import FineTuneJob
from tuneforge_operator.builder import build_rayjob

pytestmark = pytest.mark.integration
StartOperator = Callable[..., OperatorProcess]
StartStandIn = Callable[..., KubeRayStandIn]


def _expected_rayjob(stored: dict[str, Any]) -> dict[str, Any]:
    meta = stored["metadata"]
    job = FineTuneJob.model_validate(
        {
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation")},
            "spec": stored["spec"],
        }
    )
    return build_rayjob(job, TEST_RUNTIME)


def test_yaml_job_trains_and_reports_progress_and_model_version(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
    mlflow_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    for key, value in mlflow_server.env().items():
        monkeypatch.setenv(key, value)
    start_operator(
        kube_namespace, {"TUNEFORGE_OPERATOR_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri}
    )
    standin = kuberay_standin(kube_namespace, outcome="hold")
    stored = create_job(kube, kube_namespace, job_manifest("dog", model="sks-dog-it"))
    uid = stored["metadata"]["uid"]

    rayjob = wait_until("the RayJob", lambda: get_rayjob(kube, kube_namespace, "dog"))
    expected = _expected_rayjob(stored)
    assert missing_paths(expected["spec"], rayjob["spec"]) == []
    assert missing_paths(expected["metadata"], rayjob["metadata"]) == []
    job = wait_for_condition(kube, kube_namespace, "dog", "Training")
    assert job["status"]["rayJobName"] == "dog"
    assert job["status"]["observedGeneration"] == 1 and job["status"]["startTime"]

    # The trainer's side, done for real against the MLflow server: a run tagged with the uid.
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    client = MlflowClient()
    experiment = client.create_experiment(f"operator-it-{kube_namespace}")
    run = client.create_run(experiment, tags={"tuneforge.job_uid": uid})
    now_ms = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric(key, value, now_ms, 10)
            for key, value in {"step": 10, "loss": 0.25, "images_per_s": 2.0}.items()
        ],
    )
    progressed = wait_until(
        "progress from MLflow",
        lambda: (
            (j := get_job(kube, kube_namespace, "dog"))
            and (j["status"].get("progress") or {}).get("step") == 10
            and j
        ),
    )
    progress = progressed["status"]["progress"]
    assert (progress["totalSteps"], progress["percent"], progress["loss"]) == (40, 25, "0.25")
    assert progress["etaSeconds"] == 30 * 2 // 2
    assert progressed["status"]["mlflow"]["runId"] == run.info.run_id

    client.create_registered_model("sks-dog-it")
    version = client.create_model_version(
        "sks-dog-it",
        f"{run.info.artifact_uri}/adapter",
        run_id=run.info.run_id,
        tags={"tuneforge.job_uid": uid},
    )
    standin.finish("dog", "succeed")

    done = wait_for_condition(kube, kube_namespace, "dog", "Succeeded", timeout_s=90)
    status = done["status"]
    assert status["mlflow"] == {
        "runId": run.info.run_id,
        "modelName": "sks-dog-it",
        "modelVersion": str(version.version),
    }
    assert condition(done, "AdapterRegistered")["status"] == "True"
    assert status["completionTime"] and status["observedGeneration"] == 1
    # Events are written after the status patch that caused them: wait for them to arrive.
    expected = {"RayJobCreated", "Training", "TrainingSucceeded", "AdapterRegistered"}
    wait_until(
        f"events {sorted(expected)}",
        lambda: expected <= {e["reason"] for e in events(kube, kube_namespace, "dog")},
        timeout_s=30,
    )
    assert [(d, j) for n, d, j in standin.transitions if n == "dog"][-1] == (
        "Complete",
        "SUCCEEDED",
    )


def test_failures_carry_reason_and_message_and_show_in_metrics(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
) -> None:
    operator = start_operator(kube_namespace)
    standin = kuberay_standin(kube_namespace, outcome="fail")
    standin.outcomes["never-submitted"] = "submission-failed"
    create_job(kube, kube_namespace, job_manifest("app-fails"))
    create_job(kube, kube_namespace, job_manifest("never-submitted"))

    failed = wait_for_condition(kube, kube_namespace, "app-fails", "Succeeded", status="False")
    summary = condition(failed, "Succeeded")
    assert summary is not None and summary["reason"] == "AppFailed"
    assert "exit code 1" in summary["message"]
    assert condition(failed, "AdapterRegistered")["status"] == "False"
    submission = wait_for_condition(
        kube, kube_namespace, "never-submitted", "Succeeded", status="False"
    )
    assert condition(submission, "Succeeded")["reason"] == "SubmissionFailed"
    warning = [e for e in events(kube, kube_namespace, "app-fails") if e["reason"] == "AppFailed"]
    assert warning and warning[0]["type"] == "Warning"

    with urllib.request.urlopen(operator.liveness_url, timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        metrics = response.read().decode()
    assert 'tuneforge_operator_jobs{condition="Succeeded",status="False"} 2.0' in metrics
    assert "tuneforge_operator_rayjobs_created_total 2.0" in metrics
    assert 'tuneforge_operator_reconcile_duration_seconds_count{trigger="rayjob"}' in metrics


def test_missing_runtime_is_reported_then_retried(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    start_operator(kube_namespace, runtimes=False)
    create_job(kube, kube_namespace, job_manifest("waits", runtime="a100"))
    job = wait_for_condition(kube, kube_namespace, "waits", "RayJobCreated", status="False")
    created = condition(job, "RayJobCreated")
    assert created is not None and created["reason"] == "RuntimeNotFound"
    assert condition(job, "Succeeded")["status"] == "Unknown"
    assert get_rayjob(kube, kube_namespace, "waits") is None
    assert any(
        e["reason"] == "RuntimeNotFound" and e["type"] == "Warning"
        for e in events(kube, kube_namespace, "waits")
    )

    install_runtimes(kube, kube_namespace, {"a100": TEST_RUNTIME})
    wait_for_condition(kube, kube_namespace, "waits", "RayJobCreated", timeout_s=90)
    assert get_rayjob(kube, kube_namespace, "waits") is not None


def test_suspend_resume_and_immutable_fields(
    kube: KubeCluster,
    kube_namespace: str,
    start_operator: StartOperator,
    kuberay_standin: StartStandIn,
) -> None:
    start_operator(kube_namespace)
    kuberay_standin(kube_namespace, outcome="hold")
    create_job(kube, kube_namespace, job_manifest("pausable"))
    wait_for_condition(kube, kube_namespace, "pausable", "Training")
    entrypoint = get_rayjob(kube, kube_namespace, "pausable")["spec"]["entrypoint"]

    patch_job(kube, kube_namespace, "pausable", {"spec": {"suspend": True}})
    job = wait_for_condition(kube, kube_namespace, "pausable", "Suspended")
    assert get_rayjob(kube, kube_namespace, "pausable")["spec"]["suspend"] is True
    wait_until(
        "KubeRay (stand-in) to suspend",
        lambda: (
            (get_rayjob(kube, kube_namespace, "pausable").get("status") or {}).get(
                "jobDeploymentStatus"
            )
            == "Suspended"
        ),
    )
    assert condition(job, "Succeeded")["status"] == "Unknown"

    patch_job(kube, kube_namespace, "pausable", {"spec": {"suspend": False}})
    resumed = wait_for_condition(kube, kube_namespace, "pausable", "Suspended", status="False")
    assert condition(resumed, "Suspended")["reason"] == "Resumed"
    assert get_rayjob(kube, kube_namespace, "pausable")["spec"]["suspend"] is False
    wait_for_condition(kube, kube_namespace, "pausable", "Training")

    patch_job(kube, kube_namespace, "pausable", {"spec": {"training": {"maxSteps": 999}}})
    refused = wait_for_condition(kube, kube_namespace, "pausable", "SpecApplied", status="False")
    applied = condition(refused, "SpecApplied")
    assert applied["reason"] == "ImmutableFieldChanged" and "spec.training" in applied["message"]
    assert refused["status"]["observedGeneration"] == refused["metadata"]["generation"]
    assert get_rayjob(kube, kube_namespace, "pausable")["spec"]["entrypoint"] == entrypoint


def test_a_job_queued_by_its_runtime_stays_suspended_for_kueue(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    """No `queueName` on the job, but its runtime names a Kueue queue: Kueue, not the
    operator, lifts the suspension (an operator resume would bypass the queue)."""
    from tuneforge_operator.builder import KUEUE_QUEUE_LABEL

    queued = TEST_RUNTIME.model_copy(update={"queue_name": "team-a"})
    start_operator(kube_namespace, runtimes=False)
    install_runtimes(kube, kube_namespace, {"default": TEST_RUNTIME, "queued": queued})
    create_job(kube, kube_namespace, job_manifest("by-runtime", runtime="queued"))
    wait_for_condition(kube, kube_namespace, "by-runtime", "RayJobCreated")
    rayjob = get_rayjob(kube, kube_namespace, "by-runtime")
    assert rayjob["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a"
    assert rayjob["spec"]["suspend"] is True, "the operator resumed a job Kueue has not admitted"


def test_an_invalid_spec_fails_readably_and_names_no_rayjob(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    """With no webhook, a name the apiserver takes but the RayJob's labels cannot carry ends
    as InvalidSpec, worded like the webhook and the CLI, with no RayJob named or created."""
    start_operator(kube_namespace)
    name = "n" * 64
    create_job(kube, kube_namespace, job_manifest(name))
    job = wait_for_condition(kube, kube_namespace, name, "Succeeded", status="False")
    succeeded = condition(job, "Succeeded")
    assert succeeded["reason"] == "InvalidSpec"
    assert succeeded["message"].startswith("Invalid spec: metadata.name: "), succeeded["message"]
    assert not (job.get("status") or {}).get("rayJobName")
    assert rayjobs(kube, kube_namespace) == []


def test_deleting_the_job_garbage_collects_its_rayjob(
    kube: KubeCluster, kube_namespace: str, start_operator: StartOperator
) -> None:
    start_operator(kube_namespace)
    create_job(kube, kube_namespace, job_manifest("short-lived"))
    wait_for_condition(kube, kube_namespace, "short-lived", "RayJobCreated")
    assert len(rayjobs(kube, kube_namespace)) == 1
    assert not get_job(kube, kube_namespace, "short-lived")["metadata"].get("finalizers")

    response = kube.request("DELETE", f"{JOBS.format(ns=kube_namespace)}/short-lived")
    assert response.ok, response.message
    wait_until(
        "the RayJob to be garbage-collected", lambda: rayjobs(kube, kube_namespace) == [], 90
    )
