"""What a job's conditions mean to a person: a derived state and a progress snapshot.

The API stores conditions only (no phase machine); tables, `wait` and callbacks use the
state derived here. Both backends write the same conditions, so this works for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from tuneforge.api import ConditionStatus, ConditionType, FineTuneJob


class JobState(str, Enum):
    """A job's state as shown to people (derived from its conditions)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        """True for the terminal states."""
        return self in (JobState.SUCCEEDED, JobState.FAILED)


def job_state(job: FineTuneJob) -> JobState:
    """The derived state: the `Succeeded` summary first, then `Suspended`, then `Training`."""
    status = job.status
    if status is None:
        return JobState.PENDING
    summary = status.condition(ConditionType.SUCCEEDED)
    if summary is not None and summary.status == ConditionStatus.TRUE:
        return JobState.SUCCEEDED
    if summary is not None and summary.status == ConditionStatus.FALSE:
        return JobState.FAILED
    suspended = status.condition(ConditionType.SUSPENDED)
    if suspended is not None and suspended.status == ConditionStatus.TRUE:
        return JobState.SUSPENDED
    training = status.condition(ConditionType.TRAINING)
    if training is not None and training.status == ConditionStatus.TRUE:
        return JobState.RUNNING
    if status.progress is not None and status.progress.step > 0:
        return JobState.RUNNING
    return JobState.PENDING


@dataclass(frozen=True)
class JobProgress:
    """What `Client.wait` hands its callback each time a job's state or progress changes."""

    name: str
    """Job name."""
    state: JobState
    """Derived state."""
    step: int = 0
    """Optimizer steps done."""
    total_steps: int = 0
    """Optimizer steps in the job (from the status, else the spec)."""
    percent: int = 0
    """Completion in percent."""
    loss: float | None = None
    """Latest training loss."""
    eta_seconds: int | None = None
    """Estimated seconds left."""
    reason: str | None = None
    """Reason of the summary condition (or of `Training` while running)."""
    message: str = ""
    """Message of that condition."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Final evaluation figures (`dino`, `clipI`, `clipT`) when `spec.evaluation` measured them."""
    base_metrics: dict[str, float] = field(default_factory=dict)
    """The base model's figures for the same prompts and seeds."""
    promoted: bool | None = None
    """Whether `output.promoteIf` let the alias move (None: no gate ran)."""

    @classmethod
    def of(cls, job: FineTuneJob) -> JobProgress:
        """The snapshot of a job as read from the backend."""
        status = job.status
        progress = status.progress if status is not None else None
        condition = None
        if status is not None:
            condition = status.condition(ConditionType.SUCCEEDED) or status.condition(
                ConditionType.TRAINING
            )
        total = progress.total_steps if progress and progress.total_steps else 0
        total = total or job.spec.training.max_steps
        loss: float | None = None
        if progress is not None and progress.loss is not None:
            try:
                loss = float(progress.loss)
            except ValueError:
                loss = None
        step = progress.step if progress else 0
        evaluation = status.evaluation if status is not None else None
        return cls(
            name=job.name,
            state=job_state(job),
            step=step,
            total_steps=total,
            percent=progress.percent if progress else 0,
            loss=loss,
            eta_seconds=progress.eta_seconds if progress else None,
            reason=condition.reason if condition else None,
            message=condition.message if condition else "",
            metrics=_figures(evaluation.metrics) if evaluation else {},
            base_metrics=_figures(evaluation.base) if evaluation else {},
            promoted=evaluation.promoted if evaluation else None,
        )


def _figures(values: dict[str, str]) -> dict[str, float]:
    """Status figures (strings, as Kubernetes prefers) as numbers."""
    return {name: float(text) for name, text in values.items()}
