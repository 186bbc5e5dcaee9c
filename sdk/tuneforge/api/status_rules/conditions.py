"""The status rules: observed state -> the FineTuneJob's conditions, progress and times.

`compute_status` takes the status as stored and an `Observed` snapshot and returns the
status to write. It is pure, so the writer only writes when `wire(new) != wire(old)` and
every rule is unit-tested on data.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tuneforge.api.evaluation import QualityGateVerdict, apply_quality_gate
from tuneforge.api.status import (
    ConditionStatus,
    ConditionType,
    FineTuneJobStatus,
    MlflowStatus,
    ProgressStatus,
    Reason,
)
from tuneforge.api.status_rules.observed import Observed, TrainingPhase
from tuneforge.contract import Tag

T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
_WAITING_FOR_TRAINER = "Waiting for the trainer to start"


def _seconds_between(start: str, end: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    a = datetime.strptime(start, fmt).replace(tzinfo=timezone.utc)
    b = datetime.strptime(end, fmt).replace(tzinfo=timezone.utc)
    return (b - a).total_seconds()


def _progress(obs: Observed, previous: ProgressStatus | None) -> ProgressStatus | None:
    run = obs.run
    if run is None or run.step is None:
        return previous
    total = max(obs.total_steps, 1)
    step = min(run.step, total)
    eta: int | None = None
    remaining = total - step
    running = obs.training is not None and obs.training.phase == TrainingPhase.RUNNING
    if remaining == 0:
        eta = 0
    elif running and run.eta_seconds is not None:
        eta = max(0, int(run.eta_seconds))
    elif running and run.images_per_s and run.images_per_s > 0:
        eta = int(remaining * obs.images_per_step / run.images_per_s)
    return ProgressStatus(
        step=step,
        total_steps=total,
        percent=step * 100 // total,
        eta_seconds=eta,
        loss=f"{run.loss:.4g}" if run.loss is not None else None,
    )


def _adapter(obs: Observed, status: FineTuneJobStatus, gen: int | None) -> ConditionStatus:
    """Set AdapterRegistered; return its status."""
    version = status.mlflow.model_version if status.mlflow else None
    phase = obs.training.phase if obs.training else None
    if version:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            T,
            Reason.ADAPTER_REGISTERED,
            f"Registered model {obs.model_name} version {version}",
            gen,
        )
    elif phase == TrainingPhase.FAILED:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            F,
            Reason.ADAPTER_NOT_REGISTERED,
            "The job failed before registering an adapter",
            gen,
        )
    elif not obs.mlflow_configured:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            U,
            Reason.MLFLOW_NOT_CONFIGURED,
            "The operator has no MLflow tracking URI; registration is not verified",
            gen,
        )
    elif obs.mlflow_error:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED, U, Reason.MLFLOW_UNAVAILABLE, obs.mlflow_error, gen
        )
    elif phase == TrainingPhase.SUCCEEDED and obs.training is not None:
        ended = obs.training.end_time or obs.now
        overdue = _seconds_between(ended, obs.now) >= obs.registration_grace_s
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            F if overdue else U,
            Reason.ADAPTER_NOT_REGISTERED if overdue else Reason.AWAITING_REGISTRATION,
            f"Training finished but MLflow has no version of model {obs.model_name} tagged "
            f"{Tag.JOB_UID} with this job's uid",
            gen,
        )
    else:
        status.set_condition(
            ConditionType.ADAPTER_REGISTERED,
            U,
            Reason.PENDING,
            "Waiting for training to finish",
            gen,
        )
    adapter = status.condition(ConditionType.ADAPTER_REGISTERED)
    assert adapter is not None
    return adapter.status


def _ray_job_conditions(obs: Observed, status: FineTuneJobStatus, gen: int | None) -> None:
    """RayJobCreated, Suspended and SpecApplied: the conditions of a job run by a RayJob."""
    training = obs.training
    if obs.blocker is not None:
        status.set_condition(
            ConditionType.RAY_JOB_CREATED, F, obs.blocker.reason, obs.blocker.message, gen
        )
    elif training is None:
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


def _training(obs: Observed, status: FineTuneJobStatus, gen: int | None) -> None:
    training = obs.training
    if training is None:
        waiting = "Waiting for the RayJob" if obs.ray_job_name else _WAITING_FOR_TRAINER
        status.set_condition(ConditionType.TRAINING, U, Reason.PENDING, waiting, gen)
    else:
        running = training.phase == TrainingPhase.RUNNING
        status.set_condition(
            ConditionType.TRAINING, T if running else F, training.reason, training.message, gen
        )


def _suspended_and_applied(obs: Observed, status: FineTuneJobStatus, gen: int | None) -> None:
    training = obs.training
    if obs.suspend_requested or (
        training is not None and training.phase == TrainingPhase.SUSPENDED
    ):
        status.set_condition(
            ConditionType.SUSPENDED,
            T,
            Reason.SUSPENDED,
            "Suspended: the Ray cluster is deleted; set spec.suspend to false to resume",
            gen,
        )
    else:
        was = status.condition(ConditionType.SUSPENDED)
        resumed = was is not None and (was.status == T or was.reason == Reason.RESUMED.value)
        status.set_condition(
            ConditionType.SUSPENDED,
            F,
            Reason.RESUMED if resumed else Reason.NOT_SUSPENDED,
            "Resumed" if resumed else "",
            gen,
        )
    if training is None:
        return
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
    obs: Observed, status: FineTuneJobStatus, gen: int | None, adapter: ConditionStatus
) -> None:
    training = obs.training
    version = status.mlflow.model_version if status.mlflow else None
    if obs.blocker is not None:
        value = F if obs.blocker.permanent else U
        status.set_condition(
            ConditionType.SUCCEEDED, value, obs.blocker.reason, obs.blocker.message, gen
        )
    elif training is None:
        waiting = "Creating the RayJob" if obs.ray_job_name else _WAITING_FOR_TRAINER
        status.set_condition(ConditionType.SUCCEEDED, U, Reason.PENDING, waiting, gen)
    elif training.phase == TrainingPhase.FAILED:
        status.set_condition(ConditionType.SUCCEEDED, F, training.reason, training.message, gen)
    elif training.phase == TrainingPhase.SUCCEEDED:
        registration = status.condition(ConditionType.ADAPTER_REGISTERED)
        assert registration is not None
        if adapter == T:
            status.set_condition(
                ConditionType.SUCCEEDED,
                T,
                Reason.TRAINING_SUCCEEDED,
                f"Training finished; registered model {obs.model_name} version {version}",
                gen,
            )
        elif registration.reason == Reason.MLFLOW_NOT_CONFIGURED.value:
            status.set_condition(
                ConditionType.SUCCEEDED,
                T,
                Reason.TRAINING_SUCCEEDED,
                "Training finished (registration not verified: no MLflow URI)",
                gen,
            )
        else:
            status.set_condition(
                ConditionType.SUCCEEDED,
                F if adapter == F else U,
                registration.reason,
                registration.message,
                gen,
            )
    else:
        status.set_condition(ConditionType.SUCCEEDED, U, training.reason, training.message, gen)


def compute_status(current: FineTuneJobStatus | None, obs: Observed) -> FineTuneJobStatus:
    """The status to write for these observations (a new object; `current` is not changed)."""
    status = (current or FineTuneJobStatus()).model_copy(deep=True)
    gen = obs.generation
    status.observed_generation = gen
    status.ray_job_name = obs.ray_job_name
    if obs.run is not None:
        status.mlflow = MlflowStatus(
            run_id=obs.run.run_id or (status.mlflow.run_id if status.mlflow else None),
            model_name=obs.model_name,
            model_version=obs.run.model_version
            or (status.mlflow.model_version if status.mlflow else None),
        )
        status.progress = _progress(obs, status.progress)
        if obs.run.quality_gate:
            apply_quality_gate(status, QualityGateVerdict.from_json(obs.run.quality_gate), gen)
    training = obs.training
    if training is not None and training.phase in (
        TrainingPhase.RUNNING,
        TrainingPhase.SUCCEEDED,
        TrainingPhase.FAILED,
    ):
        status.start_time = status.start_time or training.start_time or obs.now
    if obs.ray_job_name is not None:
        _ray_job_conditions(obs, status, gen)
    _training(obs, status, gen)
    if obs.ray_job_name is not None:
        _suspended_and_applied(obs, status, gen)
    adapter = _adapter(obs, status, gen)
    _summary(obs, status, gen, adapter)
    if status.is_finished():
        completed = training.end_time if training else None
        status.completion_time = status.completion_time or completed or obs.now
    else:
        status.completion_time = None
    return status


def wire(status: FineTuneJobStatus | None) -> dict[str, object]:
    """The status as the API stores it (for change detection)."""
    return status.to_wire() if status is not None else {}
