"""Builders produce valid jobs; the derived state and progress snapshot read conditions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tuneforge.api import (
    ConditionStatus,
    ConditionType,
    FineTuneJob,
    FineTuneJobStatus,
    Method,
    ProgressStatus,
    Reason,
    dump_job,
    load_job,
)
from tuneforge.client.builders import (
    cpu_resources,
    dreambooth_job,
    lora_job,
    textual_inversion_job,
)
from tuneforge.client.selectors import matches_selector
from tuneforge.client.state import JobProgress, JobState, job_state


def test_lora_job_from_a_few_arguments_round_trips_through_yaml(tmp_path: Path) -> None:
    job = lora_job(
        "sks-dog",
        dataset=tmp_path,
        instance_prompt="a photo of sks dog",
        registered_model="dog-lora",
        steps=40,
        rank=8,
        resources=cpu_resources(),
        labels={"team": "vision"},
    )
    assert job.spec.method == Method.LORA
    assert job.spec.dataset.uri == str(tmp_path.resolve())
    assert job.spec.lora is not None and (job.spec.lora.rank, job.spec.lora.alpha) == (8, 8.0)
    assert job.spec.resources.gpus_per_worker == 0
    assert load_job(dump_job(job)) == job


def test_builders_keep_uris_and_reject_invalid_values() -> None:
    job = textual_inversion_job(
        "cat", "s3://data/cat", "<sks-cat>", "cat", registered_model="cat-ti"
    )
    assert job.spec.dataset.uri == "s3://data/cat"
    assert job.spec.dataset.instance_prompt == "a photo of <sks-cat>"
    booth = dreambooth_job(
        "db",
        "s3://d/x",
        "a sks dog",
        registered_model="db",
        class_prompt="a dog",
        prior_preservation=True,
        export_lora=True,
    )
    assert booth.spec.effective_lora() is not None
    with pytest.raises(ValidationError, match="rank"):
        lora_job("bad", "s3://d/x", "p", registered_model="m", rank=0)
    with pytest.raises(ValidationError, match="classPrompt"):
        dreambooth_job("db", "s3://d/x", "p", registered_model="m", prior_preservation=True)


def _job_with(status: FineTuneJobStatus | None) -> FineTuneJob:
    job = lora_job("j", "s3://d/x", "p", registered_model="m", steps=10)
    job.status = status
    return job


def test_state_is_derived_from_conditions() -> None:
    assert job_state(_job_with(None)) == JobState.PENDING
    status = FineTuneJobStatus()
    status.set_condition(ConditionType.SUCCEEDED, ConditionStatus.UNKNOWN, Reason.PENDING)
    assert job_state(_job_with(status)) == JobState.PENDING
    status.set_condition(ConditionType.TRAINING, ConditionStatus.TRUE, Reason.TRAINING)
    assert job_state(_job_with(status)) == JobState.RUNNING
    status.set_condition(ConditionType.SUCCEEDED, ConditionStatus.FALSE, Reason.JOB_FAILED, "boom")
    failed = JobProgress.of(_job_with(status))
    assert (failed.state, failed.reason, failed.message) == (JobState.FAILED, "JobFailed", "boom")
    assert failed.state.finished


def test_progress_snapshot_uses_status_then_spec() -> None:
    status = FineTuneJobStatus(
        progress=ProgressStatus(step=4, total_steps=8, percent=50, loss="0.25", eta_seconds=7)
    )
    snapshot = JobProgress.of(_job_with(status))
    assert (snapshot.step, snapshot.total_steps, snapshot.loss, snapshot.eta_seconds) == (
        4,
        8,
        0.25,
        7,
    )
    assert JobProgress.of(_job_with(None)).total_steps == 10  # from spec.training.maxSteps


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, True),
        ("team=vision", True),
        ("team==vision,tier=gold", True),
        ("team=audio", False),
        ("team!=audio", True),
        ("team!=vision", False),
        ("tier", True),
        ("!tier", False),
        ("owner", False),
    ],
)
def test_label_selectors(selector: str | None, expected: bool) -> None:
    assert matches_selector({"team": "vision", "tier": "gold"}, selector) is expected


def test_set_based_selectors_are_refused_with_advice() -> None:
    with pytest.raises(ValueError, match="key=value"):
        matches_selector({}, "team in (a,b)")
