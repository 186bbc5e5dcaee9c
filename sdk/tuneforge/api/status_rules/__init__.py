"""The status rules, pure and shared: observed state -> conditions, progress, times, events.

The operator observes a RayJob and MLflow; embedded mode observes the trainer process it
started. Both describe what they saw as an `Observed` and call `compute_status` and
`events_for`, so a job reports the same conditions, reasons and events wherever it runs.
Nothing here does I/O.
"""

from tuneforge.api.status_rules.conditions import compute_status, wire
from tuneforge.api.status_rules.events import EventSpec, events_for
from tuneforge.api.status_rules.observed import (
    Blocker,
    Observed,
    RunObservation,
    TrainingObservation,
    TrainingPhase,
)

__all__ = [
    "Blocker",
    "EventSpec",
    "Observed",
    "RunObservation",
    "TrainingObservation",
    "TrainingPhase",
    "compute_status",
    "events_for",
    "wire",
]
