"""The embedded journey with the real trainer entry point, local Ray and the SQLite MLflow store.

One `tuneforge run` as a real subprocess (the CLI's own process, progress bar included), then
the SDK's local backend on the same state directory: a background job followed with `wait`
and `logs`, the registry through `adapters`/`promote`, a failing job, and `delete`.
Run inside scripts/netns-run (Ray starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tuneforge.client import Client, JobProgress, JobState, cpu_resources, lora_job
from tuneforge.errors import AdapterNotFoundError, JobFailedError, JobNotFoundError
from tuneforge.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")


def _job(name: str, model_dir: Path, dataset_dir: Path, steps: int = 4, **extra: object):  # type: ignore[no-untyped-def]
    return lora_job(
        name,
        dataset=dataset_dir,
        instance_prompt="a photo of sks toy",
        base_model=model_dir,
        registered_model="toy-lora",
        steps=steps,
        batch_size=2,
        resolution=64,
        learning_rate=1e-3,
        resources=cpu_resources(),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh TUNEFORGE_HOME for this module."""
    return tmp_path_factory.mktemp("tuneforge-home")


@pytest.fixture(scope="module")
def cli_run(
    home: Path, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> Iterator[subprocess.CompletedProcess[str]]:
    """`tuneforge run job.yaml` as a real subprocess on the tiny assets."""
    job_file = home.parent / "job.yaml"
    manifest = _job("cli-job", tiny_model_dir, tiny_dataset_dir, alias="candidate").to_manifest()
    job_file.write_text(yaml.safe_dump(manifest))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TUNEFORGE_", "MLFLOW_TRACKING"))
    }
    env.update({"TUNEFORGE_HOME": str(home), "COLUMNS": "120"})
    yield subprocess.run(
        [TUNEFORGE, "run", str(job_file)], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def client(home: Path, cli_run: subprocess.CompletedProcess[str]) -> Client:
    """An SDK client on the embedded backend, sharing the CLI run's state."""
    return Client(Settings(home=home, backend="local", mlflow_tracking_uri=None, ray_address=None))


def test_cli_run_trains_registers_and_reports(
    cli_run: subprocess.CompletedProcess[str], home: Path
) -> None:
    assert cli_run.returncode == 0, cli_run.stdout + cli_run.stderr
    assert "finetunejob/cli-job succeeded → toy-lora version 1" in cli_run.stdout
    assert "4/4" in cli_run.stderr  # the progress bar reached the last step
    record = Client(Settings(home=home, backend="local")).get("cli-job")
    assert record.status is not None and record.status.progress is not None
    assert (record.status.progress.step, record.status.progress.total_steps) == (4, 4)
    assert record.status.mlflow is not None and record.status.mlflow.model_version == "1"
    assert (home / "mlflow.db").is_file() and any((home / "artifacts").iterdir())


def test_submit_wait_logs_adapters_promote_and_delete(
    client: Client, tiny_model_dir: Path, tiny_dataset_dir: Path
) -> None:
    seen: list[JobProgress] = []
    name = client.submit(
        _job("sdk-job", tiny_model_dir, tiny_dataset_dir, labels={"team": "vision"})
    )
    logs = client.logs(name, follow=True)  # started before the trainer prints anything
    finished = client.wait(name, timeout=600, callback=seen.append, poll_interval=0.5)
    assert finished.status is not None and finished.status.mlflow is not None
    assert finished.status.mlflow.model_name == "toy-lora"
    assert finished.status.mlflow.model_version == "2"
    assert seen[-1].state == JobState.SUCCEEDED and seen[-1].step == 4
    lines = list(logs)
    assert any('"step": 4' in line for line in lines if "tuneforge-progress" in line)
    assert any(line.startswith("tuneforge-result") for line in lines)
    runner_events = [e.reason for e in client.events(name) if e.reason != "Submitted"]
    assert runner_events == ["Training", "TrainingSucceeded", "AdapterRegistered"]
    assert [j.name for j in client.list("team=vision")] == ["sdk-job"]

    (toy,) = [a for a in client.adapters() if a.name == "toy-lora"]
    assert [v.version for v in toy.versions] == ["2", "1"]
    assert toy.aliases == {"candidate": "1"}
    client.promote("toy-lora", 2, "production")
    (toy,) = [a for a in client.adapters() if a.name == "toy-lora"]
    assert toy.aliases == {"candidate": "1", "production": "2"}
    with pytest.raises(AdapterNotFoundError):
        client.promote("toy-lora", 99, "production")

    client.delete(name)
    with pytest.raises(JobNotFoundError):
        client.get(name)


def test_a_job_with_a_missing_dataset_fails_with_the_trainers_message(
    client: Client, tiny_model_dir: Path, tmp_path: Path
) -> None:
    name = client.submit(_job("broken", tiny_model_dir, tmp_path / "no-such-folder"))
    with pytest.raises(JobFailedError) as failure:
        client.wait(name, timeout=300, poll_interval=0.5)
    assert failure.value.reason == "JobFailed"
    assert "no-such-folder" in failure.value.message
    assert any("no-such-folder" in line for line in client.logs(name, follow=False))
