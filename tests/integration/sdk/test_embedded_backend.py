"""The embedded journey with the real trainer entry point, local Ray and the SQLite MLflow store.

One `tuneforge run` as a real subprocess (the CLI's own process, progress bar included): the
one docs/cli.md runs (`tuneforge run job.yaml`, job `toy-lora`, run once per session by the
`documents` fixture in conftest.py, which also ran the document's other commands: its
`promote toy-lora 1 production` included). Then the SDK's local backend on the same state
directory: a background job followed with `wait` and `logs`, the registry through
`adapters`/`promote`, a failing job, and `delete`. Run inside scripts/netns-run (Ray starts).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.sdk.conftest import Ran
from tuneforge.client import Client, JobProgress, JobState, cpu_resources, lora_job
from tuneforge.errors import AdapterNotFoundError, JobFailedError, JobNotFoundError
from tuneforge.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = "tuneforge run job.yaml"
"""The documented command; its job is `toy-lora` (registered model toy-lora, alias candidate)."""


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
def cli(documents: dict[str, Ran]) -> Ran:
    """docs/cli.md's run: its `tuneforge run` process and its home."""
    ran = documents["cli"]
    assert RUN in ran.processes, f"docs/cli.md did not get to `{RUN}`: {ran.error}"
    return ran


@pytest.fixture
def client(cli: Ran) -> Client:
    """An SDK client on the embedded backend, sharing the CLI run's state."""
    return Client(
        Settings(home=cli.home, backend="local", mlflow_tracking_uri=None, ray_address=None)
    )


def test_cli_run_trains_registers_and_reports(cli: Ran) -> None:
    run = cli.processes[RUN]
    assert run.returncode == 0, run.stdout + run.stderr
    steps = yaml.safe_load((cli.work / "job.yaml").read_text())["spec"]["training"]["maxSteps"]
    assert "finetunejob/toy-lora succeeded → toy-lora version 1" in run.stdout
    assert f"{steps}/{steps}" in run.stderr  # the progress bar reached the last step
    record = Client(Settings(home=cli.home, backend="local")).get("toy-lora")
    assert record.status is not None and record.status.progress is not None
    assert (record.status.progress.step, record.status.progress.total_steps) == (steps, steps)
    assert record.status.mlflow is not None and record.status.mlflow.model_version == "1"
    assert (cli.home / "mlflow.db").is_file() and any((cli.home / "artifacts").iterdir())


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
    assert any("RayTrainWorker" in line for line in lines)  # the workers' lines are here...
    # ...but not the cleaner's state-API warning, always false without a dashboard (ray_quiet).
    assert not any("Failed to query Ray Train Controller actor state" in line for line in lines)
    runner_events = [e.reason for e in client.events(name) if e.reason != "Submitted"]
    assert runner_events == ["Training", "TrainingSucceeded", "AdapterRegistered"]
    assert [j.name for j in client.list("team=vision")] == ["sdk-job"]

    (toy,) = [a for a in client.adapters() if a.name == "toy-lora"]
    assert [v.version for v in toy.versions] == ["2", "1"]
    # The document registered version 1 as `candidate` and promoted it to `production`.
    assert toy.aliases == {"candidate": "1", "production": "1"}
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
