"""The shared status rules on observations without a RayJob (embedded mode) and their helpers."""

from __future__ import annotations

import dataclasses

from tuneforge.api import ConditionType, FineTuneJob, FineTuneJobStatus
from tuneforge.api.status_rules import (
    Observed,
    RunObservation,
    TrainingObservation,
    TrainingPhase,
    compute_status,
    events_for,
)
from tuneforge.client.builders import lora_job

NOW = "2026-05-01T12:00:00Z"
RUNNING = TrainingObservation(TrainingPhase.RUNNING, "Training", "Trainer process 7 started")
SUCCEEDED = TrainingObservation(
    TrainingPhase.SUCCEEDED, "TrainingSucceeded", "Training finished", end_time=NOW
)


def _job() -> FineTuneJob:
    job = lora_job("dog", "s3://d/x", "a sks dog", registered_model="dog-lora", steps=40)
    job.spec.training.batch_size = 2
    job.spec.training.gradient_accumulation_steps = 3
    job.metadata.generation = 4
    return job


def _conditions(status: FineTuneJobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status.value, c.reason) for c in status.conditions}


def test_of_job_takes_the_generation_and_the_spec_facts() -> None:
    observed = Observed.of_job(_job(), training=RUNNING, now=NOW)
    assert (observed.generation, observed.model_name, observed.total_steps) == (4, "dog-lora", 40)
    assert observed.images_per_step == 2 * 3 * 1
    assert observed.training is RUNNING and observed.ray_job_name is None
    assert Observed.of_job(_job(), generation=9).generation == 9


def test_without_a_ray_job_only_the_training_conditions_are_written() -> None:
    pending = compute_status(None, Observed(generation=1, now=NOW))
    assert _conditions(pending) == {
        "Training": ("Unknown", "Pending"),
        "AdapterRegistered": ("Unknown", "Pending"),
        "Succeeded": ("Unknown", "Pending"),
    }
    summary = pending.condition(ConditionType.SUCCEEDED)
    assert summary is not None and summary.message == "Waiting for the trainer to start"
    assert pending.ray_job_name is None and events_for(None, pending) == []


def test_the_trainers_own_eta_wins_over_the_throughput_estimate() -> None:
    run = RunObservation(step=10, loss=0.5, images_per_s=2.0, eta_seconds=12.7)
    status = compute_status(None, Observed.of_job(_job(), training=RUNNING, run=run, now=NOW))
    assert status.progress is not None
    assert (status.progress.step, status.progress.percent, status.progress.eta_seconds) == (
        10,
        25,
        12,
    )
    estimated = compute_status(
        None,
        Observed.of_job(
            _job(), training=RUNNING, run=dataclasses.replace(run, eta_seconds=None), now=NOW
        ),
    )
    assert estimated.progress is not None and estimated.progress.eta_seconds == 30 * 6 // 2


def test_no_grace_period_makes_a_missing_version_final_at_once() -> None:
    observed = Observed.of_job(
        _job(), training=SUCCEEDED, run=RunObservation(step=40), registration_grace_s=0, now=NOW
    )
    status = compute_status(None, observed)
    assert _conditions(status)["Succeeded"] == ("False", "AdapterNotRegistered")
    assert status.completion_time == NOW
    waiting = compute_status(None, dataclasses.replace(observed, registration_grace_s=120))
    assert _conditions(waiting)["Succeeded"] == ("Unknown", "AwaitingRegistration")
