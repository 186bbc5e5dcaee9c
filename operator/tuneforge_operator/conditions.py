"""Pure status computation: what we observed -> the FineTuneJob's status.

`compute_status` takes the status as read and an `Observed` snapshot and returns the status
to write; `events_for` lists the events a status change deserves. Both are pure, so the
reconciler only writes when `wire(new) != wire(old)` and every rule is unit-tested on data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from tuneforge.api import (
    ConditionStatus,
    ConditionType,
    FineTuneJobStatus,
    MlflowStatus,
    ProgressStatus,
    Reason,
)
from tuneforge.api.status import now_rfc3339
from tuneforge_operator.mlflow_reader import MlflowObservation
from tuneforge_operator.rayjob_state import RayJobObservation, RayJobPhase

T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
WARNING_REASONS = frozenset(
    {
        Reason.RUNTIME_NOT_FOUND.value,
        Reason.RUNTIME_INVALID.value,
        Reason.INVALID_SPEC.value,
        Reason.RAY_JOB_CREATE_FAILED.value,
        Reason.SUBMISSION_FAILED.value,
        Reason.DEADLINE_EXCEEDED.value,
        Reason.APP_FAILED.value,
        Reason.JOB_FAILED.value,
        Reason.JOB_STOPPED.value,
        Reason.RAY_JOB_INVALID.value,
        Reason.ADAPTER_NOT_REGISTERED.value,
        Reason.MLFLOW_UNAVAILABLE.value,
        Reason.IMMUTABLE_FIELD_CHANGED.value,
    }
)


QUIET_REASONS = frozenset(
    {
        Reason.PENDING.value,
        Reason.NOT_SUSPENDED.value,
        Reason.SPEC_APPLIED.value,
        Reason.CLUSTER_STARTING.value,
        Reason.MLFLOW_NOT_CONFIGURED.value,
        Reason.AWAITING_REGISTRATION.value,
    }
)
"""Reasons that are states, not news: no event is posted when a condition takes them."""


@dataclass(frozen=True)
class Blocker:
    """Why the RayJob does not exist (yet)."""

    reason: Reason
    message: str
    permanent: bool = False


@dataclass(frozen=True)
class Observed:
    """Everything the status is computed from, gathered by the reconciler."""

    generation: int
    ray_job_name: str
    model_name: str
    total_steps: int
    images_per_step: int
    suspend_requested: bool
    rayjob: RayJobObservation | None = None
    blocker: Blocker | None = None
    mlflow: MlflowObservation | None = None
    mlflow_error: str | None = None
    mlflow_configured: bool = True
    immutable_changes: list[str] = field(default_factory=list)
    registration_grace_s: float = 120.0
    now: str = field(default_factory=now_rfc3339)


def _seconds_between(start: str, end: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    a = datetime.strptime(start, fmt).replace(tzinfo=timezone.utc)
    b = datetime.strptime(end, fmt).replace(tzinfo=timezone.utc)
    return (b - a).total_seconds()


def _progress(obs: Observed, previous: ProgressStatus | None) -> ProgressStatus | None:
    run = obs.mlflow
    if run is None or run.step is None:
        return previous
    total = max(obs.total_steps, 1)
    step = min(run.step, total)
    eta: int | None = None
    remaining = total - step
    if obs.rayjob is not None and obs.rayjob.phase == RayJobPhase.RUNNING and remaining > 0:
        if run.images_per_s and run.images_per_s > 0:
            eta = int(remaining * obs.images_per_step / run.images_per_s)
    elif remaining == 0:
        eta = 0
    return ProgressStatus(
        step=step,
        total_steps=total,
        percent=step * 100 // total,
        eta_seconds=eta,
        loss=f"{run.loss:.4g}" if run.loss is not None else None,
    )


def _adapter(obs: Observed, status: FineTuneJobStatus, gen: int) -> tuple[ConditionStatus, str]:
    """Set AdapterRegistered; return (its status, its reason)."""
    version = status.mlflow.model_version if status.mlflow else None
    phase = obs.rayjob.phase if obs.rayjob else None
    if version:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            T,
            Reason.ADAPTER_REGISTERED,
            f"Registered model {obs.model_name} version {version}",
            gen,
        )
        return T, Reason.ADAPTER_REGISTERED.value
    if phase == RayJobPhase.FAILED:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            F,
            Reason.ADAPTER_NOT_REGISTERED,
            "The job failed before registering an adapter",
            gen,
        )
        return F, Reason.ADAPTER_NOT_REGISTERED.value
    if not obs.mlflow_configured:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            U,
            Reason.MLFLOW_NOT_CONFIGURED,
            "The operator has no MLflow tracking URI; registration is not verified",
            gen,
        )
        return U, Reason.MLFLOW_NOT_CONFIGURED.value
    if obs.mlflow_error:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED, U, Reason.MLFLOW_UNAVAILABLE, obs.mlflow_error, gen
        )
        return U, Reason.MLFLOW_UNAVAILABLE.value
    if phase == RayJobPhase.SUCCEEDED and obs.rayjob is not None:
        ended = obs.rayjob.end_time or obs.now
        overdue = _seconds_between(ended, obs.now) > obs.registration_grace_s
        reason = Reason.ADAPTER_NOT_REGISTERED if overdue else Reason.AWAITING_REGISTRATION
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            F if overdue else U,
            reason,
            f"Training finished but MLflow has no version of model {obs.model_name} tagged "
            f"tuneforge.job_uid with this job's uid",
            gen,
        )
        return (F if overdue else U), reason.value
    status.set_condition(
        ConditionType.ADAPTER_REGISTERED, U, Reason.PENDING, "Waiting for training to finish", gen
    )
    return U, Reason.PENDING.value


def _rayjob_conditions(obs: Observed, status: FineTuneJobStatus, gen: int) -> None:
    rj = obs.rayjob
    if obs.blocker is not None:
        status.set_condition(
            ConditionType.RAY_JOB_CREATED, F, obs.blocker.reason, obs.blocker.message, gen
        )
    elif rj is None:
        status.set_condition(
            ConditionType.RAY_JOB_CREATED,
            U,
            Reason.PENDING,
            f"Creating RayJob {obs.ray_job_name}",
            gen,
        )
    else:
        status.set_condition(
            ConditionType.RAY_JOB_CREATED,
            T,
            Reason.RAY_JOB_CREATED,
            f"Created RayJob {obs.ray_job_name}",
            gen,
        )
    if rj is None:
        status.set_condition(
            ConditionType.TRAINING, U, Reason.PENDING, "Waiting for the RayJob", gen
        )
    else:
        running = rj.phase == RayJobPhase.RUNNING
        status.set_condition(
            ConditionType.TRAINING, T if running else F, rj.reason, rj.message, gen
        )
    if obs.suspend_requested or (rj is not None and rj.phase == RayJobPhase.SUSPENDED):
        status.set_condition(
            ConditionType.SUSPENDED,
            T,
            Reason.SUSPENDED,
            "Suspended: the Ray cluster is deleted; set spec.suspend to false to resume",
            gen,
        )
    else:
        was = status.condition(ConditionType.SUSPENDED)
        resumed = was is not None and was.status == T
        status.set_condition(
            ConditionType.SUSPENDED,
            F,
            Reason.RESUMED
            if resumed or (was and was.reason == Reason.RESUMED.value)
            else Reason.NOT_SUSPENDED,
            "Resumed" if resumed or (was and was.reason == Reason.RESUMED.value) else "",
            gen,
        )
    if rj is not None:
        if obs.immutable_changes:
            status.set_condition(
                ConditionType.SPEC_APPLIED,
                F,
                Reason.IMMUTABLE_FIELD_CHANGED,
                "Not applied: these fields cannot change once the RayJob exists: "
                + ", ".join(obs.immutable_changes)
                + " (create a new FineTuneJob instead)",
                gen,
            )
        else:
            status.set_condition(
                ConditionType.SPEC_APPLIED,
                T,
                Reason.SPEC_APPLIED,
                f"RayJob {obs.ray_job_name} matches the spec",
                gen,
            )


def _summary(
    obs: Observed, status: FineTuneJobStatus, gen: int, adapter: tuple[ConditionStatus, str]
) -> None:
    rj = obs.rayjob
    version = status.mlflow.model_version if status.mlflow else None
    if obs.blocker is not None:
        value = F if obs.blocker.permanent else U
        status.set_condition(
            ConditionType.SUCCEEDED, value, obs.blocker.reason, obs.blocker.message, gen
        )
    elif rj is None:
        status.set_condition(ConditionType.SUCCEEDED, U, Reason.PENDING, "Creating the RayJob", gen)
    elif rj.phase == RayJobPhase.FAILED:
        status.set_condition(ConditionType.SUCCEEDED, F, rj.reason, rj.message, gen)
    elif rj.phase == RayJobPhase.SUCCEEDED:
        adapter_status, adapter_reason = adapter
        if adapter_status == T:
            status.set_condition(
                ConditionType.SUCCEEDED,
                T,
                Reason.TRAINING_SUCCEEDED,
                f"Training finished; registered model {obs.model_name} version {version}",
                gen,
            )
        elif adapter_reason == Reason.MLFLOW_NOT_CONFIGURED.value:
            status.set_condition(
                ConditionType.SUCCEEDED,
                T,
                Reason.TRAINING_SUCCEEDED,
                "Training finished (registration not verified: no MLflow URI)",
                gen,
            )
        else:
            adapter_condition = status.condition(ConditionType.ADAPTER_REGISTERED)
            message = adapter_condition.message if adapter_condition else ""
            status.set_condition(
                ConditionType.SUCCEEDED,
                F if adapter_status == F else U,
                adapter_reason,
                message,
                gen,
            )
    else:
        status.set_condition(ConditionType.SUCCEEDED, U, rj.reason, rj.message, gen)


def compute_status(current: FineTuneJobStatus | None, obs: Observed) -> FineTuneJobStatus:
    """The status to write for these observations (a new object; `current` is not changed)."""
    status = (current or FineTuneJobStatus()).model_copy(deep=True)
    gen = obs.generation
    status.observed_generation = gen
    status.ray_job_name = obs.ray_job_name
    if obs.mlflow is not None:
        status.mlflow = MlflowStatus(
            run_id=obs.mlflow.run_id or (status.mlflow.run_id if status.mlflow else None),
            model_name=obs.model_name,
            model_version=obs.mlflow.model_version
            or (status.mlflow.model_version if status.mlflow else None),
        )
        status.progress = _progress(obs, status.progress)
    rj = obs.rayjob
    if rj is not None and rj.phase in (
        RayJobPhase.RUNNING,
        RayJobPhase.SUCCEEDED,
        RayJobPhase.FAILED,
    ):
        status.start_time = status.start_time or rj.start_time or obs.now
    _rayjob_conditions(obs, status, gen)
    adapter = _adapter(obs, status, gen)
    _summary(obs, status, gen, adapter)
    if status.is_finished():
        status.completion_time = status.completion_time or (rj.end_time if rj else None) or obs.now
    else:
        status.completion_time = None
    return status


def wire(status: FineTuneJobStatus | None) -> dict[str, object]:
    """The status as the API stores it (for change detection)."""
    return status.to_wire() if status is not None else {}


@dataclass(frozen=True)
class EventSpec:
    """An event to post on the FineTuneJob."""

    type: str
    reason: str
    message: str


def events_for(old: FineTuneJobStatus | None, new: FineTuneJobStatus) -> list[EventSpec]:
    """One event per condition whose status or reason changed (deduplicated by reason)."""
    events: list[EventSpec] = []
    seen: set[str] = set()
    for condition in new.conditions:
        before = old.condition(condition.type) if old is not None else None
        if before is not None and (before.status, before.reason) == (
            condition.status,
            condition.reason,
        ):
            continue
        if condition.reason in seen or condition.reason in QUIET_REASONS:
            continue
        seen.add(condition.reason)
        kind = "Warning" if condition.reason in WARNING_REASONS else "Normal"
        message = condition.message or f"{condition.type} is {condition.status.value}"
        events.append(EventSpec(kind, condition.reason, message))
    return events
