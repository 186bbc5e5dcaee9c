"""The embedded record store and the CLI's kubectl-like output."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tuneforge.api import ConditionStatus, ConditionType, FineTuneJobStatus, MlflowStatus, Reason
from tuneforge.cli.output import OutputFormat, age, duration, print_description, print_jobs
from tuneforge.client.backend import JobEvent
from tuneforge.client.builders import lora_job
from tuneforge.embedded.backend import prepare_local_job
from tuneforge.embedded.records import JobRecordStore
from tuneforge.errors import JobExistsError, JobNotFoundError


def _job(name: str = "dog", labels: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return prepare_local_job(
        lora_job(name, "s3://d/x", "a sks dog", registered_model="dog-lora", steps=8, labels=labels)
    )


def test_records_round_trip_with_status_and_refuse_duplicates(tmp_path: Path) -> None:
    store = JobRecordStore(tmp_path)
    job = store.create(_job())
    assert job.metadata.uid and job.metadata.generation == 1
    with pytest.raises(JobExistsError, match="already exists"):
        store.create(_job())

    def finish(status: FineTuneJobStatus) -> None:
        status.set_condition(
            ConditionType.SUCCEEDED, ConditionStatus.TRUE, Reason.ADAPTER_REGISTERED
        )
        status.mlflow = MlflowStatus(run_id="r1", model_name="dog-lora", model_version="3")

    store.update_status("dog", finish)
    loaded = store.load("dog")
    assert loaded.status is not None and loaded.status.is_finished()
    assert loaded.status.mlflow == MlflowStatus(
        run_id="r1", model_name="dog-lora", model_version="3"
    )
    on_disk = json.loads((tmp_path / "jobs" / "dog" / "job.json").read_text())
    assert on_disk["status"]["mlflow"]["modelVersion"] == "3"  # camelCase, as the API stores it
    assert [j.name for j in store.list()] == ["dog"]


def test_events_runner_pids_and_delete(tmp_path: Path) -> None:
    store = JobRecordStore(tmp_path)
    store.create(_job())
    store.append_event("dog", JobEvent("Normal", "Submitted", "started"))
    store.append_event("dog", JobEvent("Warning", "TrainingFailed", "boom"))
    events = store.events("dog")
    assert [e.reason for e in events] == ["Submitted", "TrainingFailed"]
    assert all(e.time for e in events)
    store.set_runner_pid("dog", 123, trainer_pid=456)
    assert store.runner_pids("dog") == (123, 456)
    store.set_runner_pid("dog", None)
    assert store.runner_pids("dog") == (None, None)
    store.delete("dog")
    assert not (tmp_path / "jobs" / "dog").exists()
    with pytest.raises(JobNotFoundError, match="tuneforge list"):
        store.load("dog")
    with pytest.raises(JobNotFoundError):
        store.delete("dog")
    with pytest.raises(ValueError, match="invalid job name"):
        store.load("../etc")


def _render(fmt: OutputFormat, jobs: list) -> str:  # type: ignore[type-arg]
    buffer = io.StringIO()
    print_jobs(Console(file=buffer, width=200, color_system=None), jobs, fmt)
    return buffer.getvalue()


def test_job_table_shows_state_progress_and_model() -> None:
    job = _job()
    assert job.status is not None
    job.status.set_condition(
        ConditionType.SUCCEEDED, ConditionStatus.TRUE, Reason.ADAPTER_REGISTERED
    )
    job.status.mlflow = MlflowStatus(model_name="dog-lora", model_version="2")
    text = _render(OutputFormat.TABLE, [job])
    header, row = text.strip().splitlines()
    assert header.split() == ["NAME", "METHOD", "STATE", "PROGRESS", "LOSS", "ETA", "MODEL", "AGE"]
    assert row.split()[:7] == ["dog", "lora", "Succeeded", "0/8", "-", "-", "dog-lora/2"]
    assert _render(OutputFormat.NAME, [job]) == "finetunejob/dog\n"
    assert "No jobs found." in _render(OutputFormat.TABLE, [])


def test_yaml_and_json_output_are_a_kubernetes_list() -> None:
    job = _job()
    as_yaml = yaml.safe_load(_render(OutputFormat.YAML, [job]))
    as_json = json.loads(_render(OutputFormat.JSON, [job]))
    assert as_yaml == as_json
    assert as_yaml["kind"] == "List"
    assert as_yaml["items"][0]["spec"]["output"]["registeredModel"] == "dog-lora"
    assert as_yaml["items"][0]["status"]["conditions"][0]["reason"] == "Pending"


def test_describe_lists_conditions_and_events() -> None:
    job = _job()
    buffer = io.StringIO()
    events = [JobEvent("Warning", "TrainingFailed", "trainer exited with code 1", count=2)]
    print_description(Console(file=buffer, width=200, color_system=None), job, events)
    text = buffer.getvalue()
    assert "Conditions:" in text and "Succeeded" in text and "Pending" in text
    assert "TrainingFailed" in text and "(x2)" in text


def test_age_and_duration_formats() -> None:
    now = datetime(2026, 1, 2, 0, 0, 0, tzinfo=timezone.utc)
    assert age("2026-01-01T23:59:15Z", now) == "45s"
    assert age("2026-01-01T23:48:00Z", now) == "12m"
    assert age("2026-01-01T20:00:00Z", now) == "4h"
    assert age("2025-12-29T00:00:00Z", now) == "4d"
    assert age(None) == "<unknown>"
    assert (duration(None), duration(42), duration(185), duration(3720)) == (
        "-",
        "42s",
        "3m05s",
        "1h02m",
    )
