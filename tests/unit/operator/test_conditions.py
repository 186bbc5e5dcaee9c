"""The status rules fed what the operator observes: a RayJob (through `observe_rayjob`) and MLflow."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from tuneforge.api import ConditionStatus, ConditionType, FineTuneJobStatus, Reason
from tuneforge.api.status_rules import (
    Blocker,
    Observed,
    RunObservation,
    compute_status,
    events_for,
    wire,
)
from tuneforge_operator.final_event import (
    event_name,
    final_event,
    finished_recently,
    is_final_reason,
)
from tuneforge_operator.rayjob_state import observe_rayjob

NOW = "2026-05-01T12:00:00Z"
BASE = Observed(
    generation=1,
    ray_job_name="dog",
    model_name="sks-dog",
    total_steps=100,
    images_per_step=4,
    suspend_requested=False,
    now=NOW,
)
RUNNING = observe_rayjob({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})
SUCCEEDED = observe_rayjob(
    {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": "2026-05-01T11:59:00Z"}
)


def _cond(status: FineTuneJobStatus, type_: ConditionType) -> tuple[str, str]:
    condition = status.condition(type_)
    assert condition is not None, type_
    return condition.status.value, condition.reason


def test_first_visit_names_the_child_and_sets_everything_unknown() -> None:
    status = compute_status(None, BASE)
    assert status.ray_job_name == "dog" and status.observed_generation == 1
    assert _cond(status, ConditionType.SUCCEEDED) == ("Unknown", "Pending")
    assert _cond(status, ConditionType.RAY_JOB_CREATED) == ("Unknown", "Pending")
    assert _cond(status, ConditionType.SUSPENDED) == ("False", "NotSuspended")
    assert status.completion_time is None and status.start_time is None


def test_running_with_progress_and_eta() -> None:
    run = RunObservation(run_id="r1", step=25, loss=0.123456, images_per_s=2.0)
    status = compute_status(None, dataclasses.replace(BASE, training=RUNNING, run=run))
    assert _cond(status, ConditionType.TRAINING) == ("True", "Training")
    assert _cond(status, ConditionType.SUCCEEDED) == ("Unknown", "Training")
    assert status.progress is not None
    assert (status.progress.step, status.progress.total_steps, status.progress.percent) == (
        25,
        100,
        25,
    )
    assert status.progress.eta_seconds == 75 * 4 // 2
    assert status.progress.loss == "0.1235"
    assert status.mlflow is not None and status.mlflow.run_id == "r1"
    assert status.start_time == NOW


def test_success_needs_the_registered_version() -> None:
    registered = RunObservation(run_id="r1", step=100, model_version="3")
    status = compute_status(None, dataclasses.replace(BASE, training=SUCCEEDED, run=registered))
    assert _cond(status, ConditionType.SUCCEEDED) == ("True", "TrainingSucceeded")
    assert _cond(status, ConditionType.ADAPTER_REGISTERED) == ("True", "AdapterRegistered")
    assert status.mlflow is not None and status.mlflow.model_version == "3"
    assert status.completion_time == "2026-05-01T11:59:00Z"
    assert status.is_finished()


def test_success_without_version_waits_then_fails_after_the_grace_period() -> None:
    nothing = RunObservation(run_id="r1", step=100)
    waiting = compute_status(None, dataclasses.replace(BASE, training=SUCCEEDED, run=nothing))
    assert _cond(waiting, ConditionType.SUCCEEDED) == ("Unknown", "AwaitingRegistration")
    late = dataclasses.replace(BASE, training=SUCCEEDED, run=nothing, now="2026-05-01T13:00:00Z")
    failed = compute_status(waiting, late)
    assert _cond(failed, ConditionType.SUCCEEDED) == ("False", "AdapterNotRegistered")
    assert _cond(failed, ConditionType.ADAPTER_REGISTERED) == ("False", "AdapterNotRegistered")


def test_success_without_mlflow_is_reported_unverified() -> None:
    status = compute_status(
        None, dataclasses.replace(BASE, training=SUCCEEDED, mlflow_configured=False)
    )
    assert _cond(status, ConditionType.SUCCEEDED) == ("True", "TrainingSucceeded")
    assert _cond(status, ConditionType.ADAPTER_REGISTERED) == ("Unknown", "MlflowNotConfigured")


def test_failure_carries_reason_and_message() -> None:
    failed = observe_rayjob(
        {"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed", "message": "image pull"}
    )
    status = compute_status(
        None, dataclasses.replace(BASE, training=failed, mlflow_configured=False)
    )
    summary = status.condition(ConditionType.SUCCEEDED)
    assert summary is not None
    assert (summary.status, summary.reason) == (ConditionStatus.FALSE, "SubmissionFailed")
    assert "image pull" in summary.message
    assert status.completion_time == NOW


def test_missing_runtime_is_retried_not_final() -> None:
    blocker = Blocker(Reason.RUNTIME_NOT_FOUND, "Runtime 'gpu' is not defined")
    status = compute_status(None, dataclasses.replace(BASE, blocker=blocker))
    assert _cond(status, ConditionType.RAY_JOB_CREATED) == ("False", "RuntimeNotFound")
    assert _cond(status, ConditionType.SUCCEEDED) == ("Unknown", "RuntimeNotFound")
    assert not status.is_finished()


def test_invalid_spec_is_final() -> None:
    blocker = Blocker(Reason.INVALID_SPEC, "Invalid spec: x", permanent=True)
    status = compute_status(None, dataclasses.replace(BASE, blocker=blocker))
    assert _cond(status, ConditionType.SUCCEEDED) == ("False", "InvalidSpec")


def test_suspend_and_resume() -> None:
    suspended_rj = observe_rayjob({"jobDeploymentStatus": "Suspended"})
    suspended = compute_status(
        None, dataclasses.replace(BASE, training=suspended_rj, suspend_requested=True)
    )
    assert _cond(suspended, ConditionType.SUSPENDED) == ("True", "Suspended")
    assert _cond(suspended, ConditionType.SUCCEEDED) == ("Unknown", "Suspended")
    resumed = compute_status(suspended, dataclasses.replace(BASE, training=RUNNING))
    assert _cond(resumed, ConditionType.SUSPENDED) == ("False", "Resumed")


def test_immutable_change_is_reported_not_applied() -> None:
    status = compute_status(
        None, dataclasses.replace(BASE, training=RUNNING, immutable_changes=["spec.method"])
    )
    condition = status.condition(ConditionType.SPEC_APPLIED)
    assert condition is not None and condition.status == ConditionStatus.FALSE
    assert condition.reason == "ImmutableFieldChanged" and "spec.method" in condition.message


def test_unchanged_observation_gives_identical_status_and_no_events() -> None:
    obs = dataclasses.replace(BASE, training=RUNNING)
    first = compute_status(None, obs)
    again = compute_status(first, dataclasses.replace(obs, now="2026-05-01T12:30:00Z"))
    assert wire(again) == wire(first)
    assert events_for(first, again) == []


def test_transition_time_moves_only_when_status_changes() -> None:
    first = compute_status(None, dataclasses.replace(BASE, training=RUNNING))
    later = compute_status(
        first,
        dataclasses.replace(
            BASE, training=SUCCEEDED, mlflow_configured=False, now="2026-05-01T13:00:00Z"
        ),
    )
    before = first.condition(ConditionType.RAY_JOB_CREATED)
    after = later.condition(ConditionType.RAY_JOB_CREATED)
    assert before is not None and after is not None
    assert before.last_transition_time == after.last_transition_time


def test_events_follow_condition_changes_with_specific_reasons() -> None:
    created = compute_status(None, dataclasses.replace(BASE, training=RUNNING))
    events = events_for(None, created)
    reasons = {e.reason: e.type for e in events}
    assert reasons["RayJobCreated"] == "Normal" and reasons["Training"] == "Normal"
    failed_rj = observe_rayjob({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"})
    failed = compute_status(created, dataclasses.replace(BASE, training=failed_rj))
    failure_events = events_for(created, failed)
    assert [e for e in failure_events if e.reason == "DeadlineExceeded"][0].type == "Warning"
    assert len([e for e in failure_events if e.reason == "DeadlineExceeded"]) == 1


def _queued(old: FineTuneJobStatus | None, new: FineTuneJobStatus) -> list[str]:
    """Reasons the operator posts through kopf's queue (the final Event is posted apart)."""
    return [e.reason for e in events_for(old, new) if not is_final_reason(e.reason, new)]


def test_a_success_registered_later_is_announced_once_by_the_final_event() -> None:
    running = compute_status(None, dataclasses.replace(BASE, training=RUNNING))
    unregistered = RunObservation(run_id="r1", step=100)
    trained = compute_status(
        running, dataclasses.replace(BASE, training=SUCCEEDED, run=unregistered)
    )
    assert final_event(trained) is None  # awaiting registration: not finished
    assert "TrainingSucceeded" not in _queued(running, trained)
    registered = RunObservation(run_id="r1", step=100, model_version="3")
    done = compute_status(trained, dataclasses.replace(BASE, training=SUCCEEDED, run=registered))
    assert "TrainingSucceeded" not in _queued(trained, done)
    assert "AdapterRegistered" in _queued(trained, done)
    event = final_event(done)
    assert event is not None and (event.type, event.reason) == ("Normal", "TrainingSucceeded")
    assert "version 3" in event.message


def test_a_failure_is_announced_by_the_final_event_only() -> None:
    running = compute_status(None, dataclasses.replace(BASE, training=RUNNING))
    failed_rj = observe_rayjob({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"})
    failed = compute_status(running, dataclasses.replace(BASE, training=failed_rj))
    assert "DeadlineExceeded" not in _queued(running, failed)
    event = final_event(failed)
    assert event is not None and (event.type, event.reason) == ("Warning", "DeadlineExceeded")


def test_final_event_name_is_fixed_per_job_generation_and_reason() -> None:
    first = event_name("dog", "uid-1", 1, "TrainingSucceeded")
    assert first == event_name("dog", "uid-1", 1, "TrainingSucceeded")
    assert first.startswith("dog.")
    assert first != event_name("dog", "uid-1", 2, "TrainingSucceeded")
    assert first != event_name("dog", "uid-2", 1, "TrainingSucceeded")
    assert len(event_name("x" * 253, "u", 1, "R")) <= 253


def test_only_recently_finished_jobs_are_checked_after_a_restart() -> None:
    registered = RunObservation(run_id="r1", step=100, model_version="3")
    done = compute_status(None, dataclasses.replace(BASE, training=SUCCEEDED, run=registered))
    summary = done.condition(ConditionType.SUCCEEDED)
    assert summary is not None
    ended = datetime.fromisoformat(summary.last_transition_time.replace("Z", "+00:00"))
    assert finished_recently(done, now=ended + timedelta(minutes=59))
    assert not finished_recently(done, now=ended + timedelta(minutes=61))
