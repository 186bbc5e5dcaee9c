"""The TuneForge SDK: `Client`, its backends, builders and the types it returns."""

from tuneforge.client.backend import JobBackend, JobEvent
from tuneforge.client.builders import (
    cpu_resources,
    dreambooth_job,
    lora_job,
    pivotal_job,
    textual_inversion_job,
)
from tuneforge.client.client import Client
from tuneforge.client.state import JobProgress, JobState, job_state
from tuneforge.contract.progress import TrainingProgress, parse_progress_line
from tuneforge.registry import AdapterVersion, RegisteredAdapter

__all__ = [
    "AdapterVersion",
    "Client",
    "JobBackend",
    "JobEvent",
    "JobProgress",
    "JobState",
    "RegisteredAdapter",
    "TrainingProgress",
    "cpu_resources",
    "dreambooth_job",
    "job_state",
    "lora_job",
    "parse_progress_line",
    "pivotal_job",
    "textual_inversion_job",
]
