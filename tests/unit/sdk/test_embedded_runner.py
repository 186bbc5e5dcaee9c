"""The embedded runner writes status through the operator's rules: same conditions, same reasons.

A stand-in trainer (a small Python script printing the trainer's progress and result lines)
runs under the real `JobRunner`; its record's conditions are compared with the status rules
fed the equivalent observation, and with what the operator computes from a RayJob in the
same state.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuneforge.api import ConditionType, FineTuneJobStatus
from tuneforge.api.status_rules import (
    Observed,
    RunObservation,
    TrainingObservation,
    TrainingPhase,
    compute_status,
)
from tuneforge.client.builders import lora_job
from tuneforge.embedded.backend import prepare_local_job
from tuneforge.embedded.records import JobRecordStore
from tuneforge.embedded.runner import JobRunner, mark_pending, record_failure
from tuneforge.settings import Settings
from tuneforge_operator.rayjob_state import observe_rayjob

STEPS = 4
_TRAINER = """
import sys
from tuneforge.contract import format_progress, format_result
sys.stdin.read()
for step in range(1, {steps} + 1):
    print(format_progress(step, {steps}, 0.5 / step, 1e-4, 3.0, None), flush=True)
{finish}
"""
_REGISTER = 'print(format_result(run_id="run-1", model_name="dog-lora", model_version="3"))'
_FAIL = 'print("ValueError: no images in the dataset"); sys.exit(2)'


def _runner(tmp_path: Path, finish: str) -> tuple[JobRunner, JobRecordStore]:
    script = tmp_path / "trainer.py"
    script.write_text(_TRAINER.format(steps=STEPS, finish=finish))
    # Every stand-in reports its version or fails, so MLflow is never asked: an unreachable
    # server keeps embedded mode from creating its local store.
    settings = Settings(
        home=tmp_path / "home",
        backend="local",
        ray_address=None,
        mlflow_tracking_uri="http://127.0.0.1:9",
    )
    store = JobRecordStore(settings.home)
    job = lora_job("dog", "s3://d/x", "a sks dog", registered_model="dog-lora", steps=STEPS)
    store.create(prepare_local_job(job))
    return JobRunner(store, settings, [sys.executable, str(script)]), store


def _conditions(status: FineTuneJobStatus | None) -> dict[str, tuple[str, str, str]]:
    assert status is not None
    return {c.type: (c.status.value, c.reason, c.message) for c in status.conditions}


def _brief(conditions: dict[str, tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {kind: (value, reason) for kind, (value, reason, _) in conditions.items()}


def test_a_finished_job_has_the_conditions_the_rules_and_the_operator_give(
    tmp_path: Path,
) -> None:
    runner, store = _runner(tmp_path, _REGISTER)
    finished = runner.run("dog")
    status = finished.status
    assert status is not None and status.is_finished()
    assert status.mlflow is not None
    assert (status.mlflow.run_id, status.mlflow.model_version) == ("run-1", "3")
    assert status.progress is not None
    assert (status.progress.step, status.progress.percent, status.progress.eta_seconds) == (
        4,
        100,
        0,
    )
    assert status.start_time and status.completion_time

    # The rules fed the same observation, from the record as submitted.
    submitted = prepare_local_job(
        lora_job("dog", "s3://d/x", "a sks dog", registered_model="dog-lora", steps=STEPS)
    )
    observed = Observed.of_job(
        submitted,
        training=TrainingObservation(
            TrainingPhase.SUCCEEDED, "TrainingSucceeded", "Training finished"
        ),
        run=RunObservation(run_id="run-1", step=STEPS, loss=0.125, model_version="3"),
        registration_grace_s=0,
    )
    expected = compute_status(submitted.status, observed)
    assert _conditions(status) == _conditions(expected)
    assert status.conditions[-1].type == ConditionType.SUCCEEDED.value
    summary = status.condition(ConditionType.SUCCEEDED)
    assert summary is not None and summary.reason == "TrainingSucceeded"

    # The operator, for a RayJob that completed and the same version in MLflow.
    on_cluster = compute_status(
        None,
        Observed.of_job(
            submitted,
            ray_job_name="dog",
            training=observe_rayjob({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}),
            run=RunObservation(run_id="run-1", step=STEPS, model_version="3"),
        ),
    )
    shared = {"Training", "AdapterRegistered", "Succeeded"}
    operator_view = {k: v for k, v in _conditions(on_cluster).items() if k in shared}
    assert _conditions(status) == operator_view

    reasons = [event.reason for event in store.events("dog")]
    assert reasons == ["Training", "TrainingSucceeded", "AdapterRegistered"]


def test_a_failing_trainer_fails_the_job_as_the_rules_say(tmp_path: Path) -> None:
    runner, store = _runner(tmp_path, _FAIL)
    finished = runner.run("dog")
    conditions = _conditions(finished.status)
    assert _brief(conditions) == {
        "Training": ("False", "JobFailed"),
        "AdapterRegistered": ("False", "AdapterNotRegistered"),
        "Succeeded": ("False", "JobFailed"),
    }
    assert "exited with code 2: ValueError: no images" in conditions["Succeeded"][2]
    warnings = [e.reason for e in store.events("dog") if e.type == "Warning"]
    assert warnings == ["JobFailed", "AdapterNotRegistered"]
    assert store.runner_pids("dog") == (None, None)


def test_pending_and_a_lost_runner_go_through_the_rules(tmp_path: Path) -> None:
    status = FineTuneJobStatus()
    mark_pending(status, 1)
    assert _brief(_conditions(status)) == _brief(
        _conditions(compute_status(None, Observed(generation=1)))
    )
    assert status.observed_generation == 1 and not status.is_finished()

    _, store = _runner(tmp_path, _REGISTER)
    failed = record_failure(store, "dog", "Embedded runner failed: OSError: disk full")
    summary = failed.status.condition(ConditionType.SUCCEEDED) if failed.status else None
    assert summary is not None and (summary.status.value, summary.reason) == ("False", "JobFailed")
    assert failed.status is not None and failed.status.completion_time
    again = record_failure(store, "dog", "something else")
    assert again.status == failed.status  # a finished job stays as it finished


def test_progress_without_a_total_takes_the_specs(tmp_path: Path) -> None:
    runner, _ = _runner(tmp_path, _REGISTER)
    (tmp_path / "trainer.py").write_text(
        "import sys\nsys.stdin.read()\nprint('step=2 loss=0.3', flush=True)\n"
        'print(\'tuneforge-result {"run_id": "r", "model_version": "1"}\')\n'
    )
    finished = runner.run("dog")
    assert finished.status is not None and finished.status.progress is not None
    progress = finished.status.progress
    assert (progress.step, progress.total_steps, progress.percent, progress.loss) == (
        2,
        STEPS,
        50,
        "0.3",
    )
