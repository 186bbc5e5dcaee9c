"""The events a status change deserves: one per condition whose status or reason changed."""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.api.status import FineTuneJobStatus, Reason

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
"""Reasons whose events are Warnings (the rest are Normal)."""

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
class EventSpec:
    """An event to post on the FineTuneJob."""

    type: str
    """`Normal` or `Warning`."""
    reason: str
    """The condition's CamelCase reason."""
    message: str
    """The condition's message."""


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
