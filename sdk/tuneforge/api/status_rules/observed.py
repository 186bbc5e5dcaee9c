"""What a job's status is computed from: its observed state, whatever runs the job.

The operator fills an `Observed` from the RayJob (through `observe_rayjob`) and MLflow's
REST API; embedded mode from the trainer process it started and the trainer's output. Both
hand it to `compute_status`, so both write the same conditions for the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tuneforge.api.job import FineTuneJob
from tuneforge.api.status import Reason, now_rfc3339


class TrainingPhase(str, Enum):
    """Where the job's training is, whatever runs it (a RayJob or a local process)."""

    STARTING = "Starting"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class TrainingObservation:
    """One reading of the training's state."""

    phase: TrainingPhase
    """Where training is."""
    reason: str
    """CamelCase reason for the `Training` condition (and `Succeeded` while not finished)."""
    message: str
    """Human-readable explanation."""
    start_time: str | None = None
    """When training started running (RFC 3339), when known."""
    end_time: str | None = None
    """When training reached a terminal state (RFC 3339), when known."""


@dataclass(frozen=True)
class RunObservation:
    """What the job's training run reported: its latest metrics and the registered version."""

    run_id: str | None = None
    """MLflow run id."""
    step: int | None = None
    """Optimizer steps done (None before the first logged step)."""
    loss: float | None = None
    """Latest training loss."""
    images_per_s: float | None = None
    """Training throughput (gives the ETA when the trainer reported none)."""
    eta_seconds: float | None = None
    """The trainer's own estimate of the seconds left, when it reported one."""
    model_version: str | None = None
    """The version of the job's registered model that the run registered."""
    quality_gate: str | None = None
    """The trainer's quality-gate verdict (JSON of the run tag `QUALITY_GATE_TAG`), once recorded."""


@dataclass(frozen=True)
class Blocker:
    """Why the job's RayJob does not exist (yet)."""

    reason: Reason
    """`RuntimeNotFound`, `InvalidSpec`, ..."""
    message: str
    """What is wrong and what to do."""
    permanent: bool = False
    """Retrying cannot help until the spec changes (`Succeeded` False, not Unknown)."""


@dataclass(frozen=True)
class Observed:
    """Everything a job's status is computed from.

    `ray_job_name` is None when the job runs without a RayJob (embedded mode): then the
    RayJob's own conditions (`RayJobCreated`, `Suspended`, `SpecApplied`) are left out.
    """

    generation: int | None
    """The `.metadata.generation` observed."""
    model_name: str = ""
    """`spec.output.registeredModel`."""
    total_steps: int = 0
    """`spec.training.maxSteps` (or the total the trainer reported)."""
    images_per_step: int = 1
    """Images one optimizer step consumes over all workers (for the ETA)."""
    ray_job_name: str | None = None
    """The RayJob that runs the job; None when no RayJob does."""
    suspend_requested: bool = False
    """`spec.suspend`."""
    training: TrainingObservation | None = None
    """The training's state; None while nothing runs it yet."""
    blocker: Blocker | None = None
    """Why the RayJob cannot be created."""
    run: RunObservation | None = None
    """What the training run reported; None when nothing could be read."""
    mlflow_error: str | None = None
    """Why MLflow could not be read."""
    mlflow_configured: bool = True
    """False when there is no MLflow to verify the registration in."""
    immutable_changes: list[str] = field(default_factory=list)
    """Spec fields changed since the RayJob was built from it."""
    registration_grace_s: float = 120.0
    """How long after training succeeds the registered version may take to appear."""
    now: str = field(default_factory=now_rfc3339)
    """The time of this observation (RFC 3339)."""

    @classmethod
    def of_job(cls, job: FineTuneJob, **observations: Any) -> Observed:
        """An observation of `job`: its generation and spec facts, plus `observations`."""
        spec = job.spec
        facts: dict[str, Any] = {
            "generation": job.metadata.generation,
            "model_name": spec.output.registered_model,
            "total_steps": spec.training.max_steps,
            "images_per_step": spec.training.batch_size
            * spec.training.gradient_accumulation_steps
            * spec.resources.workers,
            "suspend_requested": spec.suspend,
        }
        return cls(**{**facts, **observations})
