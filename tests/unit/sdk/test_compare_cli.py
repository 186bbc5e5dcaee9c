"""`tuneforge compare`'s refusals, through typer's runner on the embedded backend's real stores.

Job records are written with `JobRecordStore` (what the runner itself uses); the run without
evaluation is a real run in the embedded SQLite MLflow store with a training loss only, as a
job without `spec.evaluation` leaves it, and a version registered from it. Each refusal is
one line and exit status 1. The report from real trained jobs is in
tests/integration/sdk/test_compare.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.api import FineTuneJobStatus, MlflowStatus
from tuneforge.cli.main import app
from tuneforge.client.builders import lora_job
from tuneforge.embedded.backend import prepare_local_job
from tuneforge.embedded.records import JobRecordStore
from tuneforge.registry.mlflow_store import MlflowStore, ensure_experiment
from tuneforge.settings import Settings

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TUNEFORGE_HOME with the embedded backend."""
    state = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(state))
    monkeypatch.setenv("TUNEFORGE_BACKEND", "local")
    for variable in ("TUNEFORGE_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    return state


def _store_job(home: Path, name: str, run_id: str | None = None) -> None:
    store = JobRecordStore(home)
    job = lora_job(name, "s3://d/x", "a sks toy", registered_model="toy", steps=5)
    store.create(prepare_local_job(job))
    if run_id is not None:

        def trained(status: FineTuneJobStatus) -> None:
            status.mlflow = MlflowStatus(run_id=run_id)

        store.update_status(name, trained)


def _run_without_evaluation(home: Path) -> str:
    """A finished run with a loss history and no `eval/*` figures, registered as plain/1."""
    store = MlflowStore(Settings(home=home, mlflow_tracking_uri=None))
    with store.client() as client:
        experiment = ensure_experiment(client, store.settings)
        run_id = str(client.create_run(experiment).info.run_id)
        for step, loss in enumerate((0.5, 0.4), start=1):
            client.log_metric(run_id, "loss", loss, step=step)
        client.set_terminated(run_id)
        client.create_registered_model("plain")
        client.create_model_version("plain", f"runs:/{run_id}/adapter", run_id)
    return run_id


def _one_line_error(result: object, *expected: str) -> None:
    output = getattr(result, "output", "")
    assert getattr(result, "exit_code", None) == 1, output
    assert output.startswith("error: ") and output.count("\n") == 1, output
    for text in expected:
        assert text in output, output


def test_unknown_jobs_and_versions_are_refused(home: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    _one_line_error(
        runner.invoke(app, ["compare", "ghost", "-o", str(report)]), "'ghost' not found"
    )
    _one_line_error(
        runner.invoke(app, ["compare", "ghost/3", "-o", str(report)]),
        "registered model 'ghost' has no version 3",
    )
    _one_line_error(
        runner.invoke(app, ["compare", "ghost@production", "-o", str(report)]),
        "has no alias 'production'",
    )
    assert not report.exists()


def test_a_job_that_has_not_trained_names_its_state(home: Path, tmp_path: Path) -> None:
    _store_job(home, "waiting")
    _one_line_error(
        runner.invoke(app, ["compare", "waiting", "-o", str(tmp_path / "r.html")]),
        "job 'waiting' (Pending) names no MLflow run",
        "tuneforge wait waiting",
    )


def test_a_run_without_evaluation_says_which_and_how_to_turn_it_on(
    home: Path, tmp_path: Path
) -> None:
    run_id = _run_without_evaluation(home)
    _store_job(home, "no-eval", run_id=run_id)
    for ref, label in (("no-eval", "job no-eval"), ("plain/1", "plain/1")):
        _one_line_error(
            runner.invoke(app, ["compare", ref, "-o", str(tmp_path / "r.html")]),
            f"{label} (run {run_id}) has no evaluation figures",
            "add `evaluation: {}` to the job's spec",
        )
    assert not (tmp_path / "r.html").exists()


def test_an_unwritable_output_is_refused_before_anything_is_read(
    home: Path, tmp_path: Path
) -> None:
    # The job does not exist either: the output is checked first, so that is what is said.
    _one_line_error(
        runner.invoke(app, ["compare", "ghost", "-o", str(tmp_path / "missing" / "r.html")]),
        "cannot write the report to",
        "does not exist",
    )
    _one_line_error(runner.invoke(app, ["compare", "ghost", "-o", str(tmp_path)]), "it is a folder")
    assert not (home / "mlflow.db").exists()


def test_compare_is_in_the_help(home: Path) -> None:
    result = runner.invoke(app, ["compare", "--help"])
    assert result.exit_code == 0
    assert "--output" in result.output and "JOB|NAME/VERSION" in result.output
    missing = runner.invoke(app, ["compare", "ghost"])
    assert missing.exit_code == 2 and "--output" in missing.output
