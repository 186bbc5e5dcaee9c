"""FineTuneJob status, following the Kubernetes API conventions (conditions, no phase)."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import ConfigDict, Field

from tuneforge.api.base import ApiModel


class ConditionStatus(str, Enum):
    """Condition truth value."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(str, Enum):
    """Condition types. `Succeeded` is the summary; the others are details."""

    SUCCEEDED = "Succeeded"
    RAY_JOB_CREATED = "RayJobCreated"
    TRAINING = "Training"
    ADAPTER_REGISTERED = "AdapterRegistered"
    SUSPENDED = "Suspended"
    SPEC_APPLIED = "SpecApplied"
    QUALITY_GATE = "QualityGate"


class Reason(str, Enum):
    """Named CamelCase reasons used in conditions and events."""

    PENDING = "Pending"
    RAY_JOB_CREATED = "RayJobCreated"
    RAY_JOB_CREATE_FAILED = "RayJobCreateFailed"
    RUNTIME_NOT_FOUND = "RuntimeNotFound"
    INVALID_SPEC = "InvalidSpec"
    CLUSTER_STARTING = "ClusterStarting"
    TRAINING = "Training"
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    ADAPTER_REGISTERED = "AdapterRegistered"
    ADAPTER_NOT_REGISTERED = "AdapterNotRegistered"
    SUBMISSION_FAILED = "SubmissionFailed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    APP_FAILED = "AppFailed"
    JOB_FAILED = "JobFailed"
    JOB_STOPPED = "JobStopped"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    RAY_JOB_DELETED = "RayJobDeleted"
    RAY_JOB_INVALID = "RayJobInvalid"
    RUNTIME_INVALID = "RuntimeInvalid"
    RETRYING = "Retrying"
    NOT_SUSPENDED = "NotSuspended"
    AWAITING_REGISTRATION = "AwaitingRegistration"
    MLFLOW_NOT_CONFIGURED = "MlflowNotConfigured"
    MLFLOW_UNAVAILABLE = "MlflowUnavailable"
    SPEC_APPLIED = "SpecApplied"
    IMMUTABLE_FIELD_CHANGED = "ImmutableFieldChanged"
    QUALITY_GATE_PASSED = "QualityGatePassed"
    QUALITY_GATE_FAILED = "QualityGateFailed"


def now_rfc3339() -> str:
    """The current time as Kubernetes writes timestamps (UTC, second precision, `Z`)."""
    return datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class Condition(ApiModel):
    """One observation of the job's state (metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316)
    """Condition type, e.g. `Succeeded`."""
    status: ConditionStatus
    """`True`, `False` or `Unknown`."""
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """One CamelCase word for programs."""
    message: str = Field(default="", max_length=32768)
    """Human-readable detail."""
    last_transition_time: str = Field(default_factory=now_rfc3339)
    """When `status` last changed (RFC 3339)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The `.metadata.generation` this condition was computed from."""


class ProgressStatus(ApiModel):
    """Training progress, read from the job's MLflow run."""

    step: int = Field(default=0, ge=0)
    """Optimizer steps done."""
    total_steps: int = Field(default=0, ge=0)
    """Optimizer steps in the job."""
    percent: int = Field(default=0, ge=0, le=100)
    """Completion in percent."""
    eta_seconds: int | None = Field(default=None, ge=0)
    """Estimated seconds until training ends."""
    loss: str | None = None
    """Latest training loss (a string: Kubernetes discourages floats in APIs)."""


class MlflowStatus(ApiModel):
    """Where the job's run and result live in MLflow."""

    run_id: str | None = None
    """The job's MLflow run."""
    model_name: str | None = None
    """Registered model that received the adapter."""
    model_version: str | None = None
    """The registered version."""


class EvaluationStatus(ApiModel):
    """Result quality measured after training (`spec.evaluation`), read from the job's run."""

    metrics: dict[str, str] = Field(default_factory=dict)
    """Final values by metric (`dino`, `clipI`, `clipT`), as strings like `loss`."""
    base: dict[str, str] = Field(default_factory=dict)
    """The base model's values for the same prompts and seeds, before training."""
    promoted: bool | None = None
    """Whether every `output.promoteIf` minimum held, so `output.alias` moved (None: no gate ran)."""

    def summary(self) -> str:
        """One line for people: `dino 0.7120 (base 0.4010), clipT 0.3010; alias moved`."""
        parts = [
            f"{name} {value}" + (f" (base {self.base[name]})" if name in self.base else "")
            for name, value in sorted(self.metrics.items())
        ]
        text = ", ".join(parts) or "no figures"
        if self.promoted is not None:
            text += "; alias moved" if self.promoted else "; alias held back by promoteIf"
        return text


class FineTuneJobStatus(ApiModel):
    """Observed state of a FineTuneJob."""

    # Unknown keys are ignored rather than refused: controllers write status, and the CRD
    # keeps other controllers' keys (e.g. kopf's) there; a client must still read the object.
    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list)
    """Conditions keyed by type; `Succeeded` summarises the job."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The `.metadata.generation` last acted on."""
    ray_job_name: str | None = None
    """Name of the owned RayJob (written before it is created)."""
    start_time: str | None = None
    """When training started (RFC 3339)."""
    completion_time: str | None = None
    """When the job reached a terminal state (RFC 3339)."""
    progress: ProgressStatus | None = None
    """Training progress."""
    mlflow: MlflowStatus | None = None
    """MLflow run and registered version."""
    evaluation: EvaluationStatus | None = None
    """Result quality figures (when `spec.evaluation` is set and training finished)."""

    def condition(self, type_: ConditionType | str) -> Condition | None:
        """The condition of this type, if present."""
        key = type_.value if isinstance(type_, ConditionType) else type_
        return next((c for c in self.conditions if c.type == key), None)

    def set_condition(
        self,
        type_: ConditionType | str,
        status: ConditionStatus,
        reason: Reason | str,
        message: str = "",
        observed_generation: int | None = None,
    ) -> bool:
        """Set a condition, keeping `lastTransitionTime` unless `status` changes. True when changed."""
        key = type_.value if isinstance(type_, ConditionType) else type_
        reason_text = reason.value if isinstance(reason, Reason) else reason
        current = self.condition(key)
        if current is not None and (
            current.status,
            current.reason,
            current.message,
            current.observed_generation,
        ) == (
            status,
            reason_text,
            message,
            observed_generation,
        ):
            return False
        new = Condition(
            type=key,
            status=status,
            reason=reason_text,
            message=message,
            observed_generation=observed_generation,
            last_transition_time=(
                current.last_transition_time
                if current is not None and current.status == status
                else now_rfc3339()
            ),
        )
        others = [c for c in self.conditions if c.type != key]
        self.conditions = (
            [*others, new]
            if current is None
            else [new if c.type == key else c for c in self.conditions]
        )
        return True

    def is_finished(self) -> bool:
        """True when `Succeeded` is True or False (a terminal state)."""
        summary = self.condition(ConditionType.SUCCEEDED)
        return summary is not None and summary.status != ConditionStatus.UNKNOWN
