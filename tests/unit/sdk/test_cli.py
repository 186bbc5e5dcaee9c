"""The CLI through typer's runner, on the embedded backend's real record store and MLflow store.

Records are written with `JobRecordStore` (the store the runner itself uses), so these tests
need no trainer; the journey with a real trainer is in tests/integration/sdk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tuneforge.api import ConditionStatus, ConditionType, FineTuneJobStatus, Reason
from tuneforge.cli.main import app
from tuneforge.client.builders import lora_job
from tuneforge.embedded.backend import prepare_local_job
from tuneforge.embedded.records import JobRecordStore

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


def _store_job(home: Path, name: str, labels: dict[str, str] | None = None) -> JobRecordStore:
    store = JobRecordStore(home)
    job = lora_job(name, "s3://d/x", "a sks toy", registered_model="toy", steps=5, labels=labels)
    store.create(prepare_local_job(job))
    return store


def test_list_get_describe_and_delete(home: Path) -> None:
    store = _store_job(home, "alpha", {"team": "vision"})
    _store_job(home, "beta", {"team": "audio"})

    def failed(status: FineTuneJobStatus) -> None:
        status.set_condition(
            ConditionType.SUCCEEDED, ConditionStatus.FALSE, Reason.JOB_FAILED, "boom"
        )

    store.update_status("beta", failed)

    table = runner.invoke(app, ["list"])
    assert table.exit_code == 0, table.output
    assert [line.split()[:3] for line in table.output.strip().splitlines()[1:]] == [
        ["alpha", "lora", "Pending"],
        ["beta", "lora", "Failed"],
    ]
    selected = runner.invoke(app, ["list", "-l", "team=vision", "-o", "name"])
    assert selected.output == "finetunejob/alpha\n"
    as_json = json.loads(runner.invoke(app, ["get", "beta", "-o", "json"]).output)
    conditions = {c["type"]: c for c in as_json["status"]["conditions"]}
    assert conditions["Succeeded"]["message"] == "boom"
    as_yaml = yaml.safe_load(runner.invoke(app, ["get", "alpha", "-o", "yaml"]).output)
    assert as_yaml["metadata"]["labels"] == {"team": "vision"}
    described = runner.invoke(app, ["describe", "beta"])
    assert "JobFailed" in described.output and "boom" in described.output

    deleted = runner.invoke(app, ["delete", "alpha", "beta"])
    assert deleted.exit_code == 0
    assert 'finetunejob "beta" deleted' in deleted.output
    missing = runner.invoke(app, ["get", "alpha"])
    assert missing.exit_code == 1
    assert "not found" in missing.output


def test_logs_print_the_record_and_wait_times_out_on_a_pending_job(home: Path) -> None:
    store = _store_job(home, "gamma")
    store.log_path("gamma").write_text("loading\nstep=1 loss=0.5\n")
    logs = runner.invoke(app, ["logs", "gamma"])
    assert logs.output == "loading\nstep=1 loss=0.5\n"
    waited = runner.invoke(app, ["wait", "gamma", "--timeout", "0.3", "--quiet"])
    assert waited.exit_code == 3
    assert "did not finish within 0.3 s" in waited.output


def test_wait_on_a_failed_job_exits_1_with_reason(home: Path) -> None:
    store = _store_job(home, "delta")

    def failed(status: FineTuneJobStatus) -> None:
        status.set_condition(
            ConditionType.SUCCEEDED, ConditionStatus.FALSE, Reason.JOB_FAILED, "no images"
        )

    store.update_status("delta", failed)
    waited = runner.invoke(app, ["wait", "delta"])
    assert waited.exit_code == 1
    assert "failed (JobFailed): no images" in waited.output


def test_invalid_job_files_name_the_field(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tuneforge.io/v1alpha1",
                "kind": "FineTuneJob",
                "metadata": {"name": "bad"},
                "spec": {
                    "method": "lora",
                    "dataset": {"uri": "s3://d/x"},
                    "lora": {"rank": 0},
                    "output": {"registeredModel": "m"},
                },
            }
        )
    )
    result = runner.invoke(app, ["submit", str(bad)])
    assert result.exit_code == 2
    assert "rank" in result.output
    absent = runner.invoke(app, ["submit", str(tmp_path / "nope.yaml")])
    assert absent.exit_code == 2 and "not found" in absent.output
    assert not (home / "jobs" / "bad").exists()


def test_adapters_and_promote_on_an_empty_local_registry(home: Path) -> None:
    listed = runner.invoke(app, ["adapters"])
    assert listed.exit_code == 0, listed.output
    assert "No registered adapters." in listed.output
    assert (home / "mlflow.db").is_file()  # the embedded SQLite store lives under home
    promoted = runner.invoke(app, ["promote", "ghost", "1", "production"])
    assert promoted.exit_code == 1
    assert "registered model 'ghost' has no version 1" in promoted.output


def test_generate_refuses_bad_adapter_references_and_unreachable_endpoints(
    home: Path, tmp_path: Path
) -> None:
    bad = runner.invoke(app, ["generate", "a toy", "--adapter", "dog@@x"])
    assert bad.exit_code == 2 and "NAME@ALIAS" in bad.output
    unreachable = runner.invoke(
        app, ["generate", "a toy", "--url", "http://127.0.0.1:9", "-o", str(tmp_path / "x.png")]
    )
    assert unreachable.exit_code == 1
    assert "tuneforge serve" in unreachable.output
    assert not (tmp_path / "x.png").exists()


def test_unknown_backend_is_a_configuration_error(home: Path) -> None:
    result = runner.invoke(app, ["list", "--backend", "nomad"])
    assert result.exit_code == 1
    assert "use one of local, kubernetes" in result.output
