"""Job commands: submit, get, list, describe, logs, wait, delete, run (the `adapters` group
lives in `cli/adapters.py`, `promote` in `cli/promote.py`).

Every command takes `--backend local|kubernetes` (env `TUNEFORGE_BACKEND`) and, for the
Kubernetes backend, `--namespace` (env `TUNEFORGE_NAMESPACE`). `run` always runs here.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from tuneforge.api import FineTuneJob, load_job
from tuneforge.api.base import error_messages
from tuneforge.cli.output import (
    OutputFormat,
    TrainingProgressBar,
    print_description,
    print_job,
    print_jobs,
)
from tuneforge.client.client import Client
from tuneforge.client.state import JobProgress, JobState
from tuneforge.contract import TrainingProgress
from tuneforge.errors import TuneForgeError, WaitTimeoutError
from tuneforge.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

BackendOption = typer.Option(
    None,
    "--backend",
    "-b",
    help="Job backend: local (embedded) or kubernetes [default: TUNEFORGE_BACKEND, else local].",
)
NamespaceOption = typer.Option(
    None,
    "--namespace",
    "-n",
    help="Kubernetes namespace (kubernetes backend) [default: TUNEFORGE_NAMESPACE, else default].",
)
OutputOption = typer.Option(
    OutputFormat.TABLE, "--output", "-o", help="Output format: table, wide, yaml, json or name."
)


def handle_errors(command: F) -> F:
    """Turn TuneForge and validation errors into one-line messages and exit codes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except WaitTimeoutError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(EXIT_TIMEOUT) from None
        except TuneForgeError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(EXIT_FAILED) from None
        except ValidationError as exc:
            if exc.title == FineTuneJob.__name__:
                lines = error_messages(exc, FineTuneJob)
            else:
                lines = [str(exc)]
            err.print("error: invalid FineTuneJob:\n" + "\n".join(f"  {line}" for line in lines))
            raise typer.Exit(EXIT_USAGE) from None
        except (ValueError, FileNotFoundError) as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper  # type: ignore[return-value]


def make_client(backend: str | None, namespace: str | None) -> Client:
    """A Client for the chosen backend and namespace (settings from the environment)."""
    settings = Settings()
    updates: dict[str, Any] = {}
    if backend:
        updates["backend"] = backend
    if namespace:
        updates["namespace"] = namespace
    return Client(settings.model_copy(update=updates) if updates else settings)


def read_job_file(path: str) -> FineTuneJob:
    """One FineTuneJob from a YAML/JSON file, or from stdin with `-`."""
    if path == "-":
        return load_job(sys.stdin.read())
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"job file {path!r} not found: pass a FineTuneJob YAML file or -")
    return load_job(file)


def submit(
    file: str = typer.Argument(..., help="FineTuneJob YAML/JSON file, or - for stdin."),
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Submit a FineTuneJob; it runs in the background (follow it with `logs -f` or `wait`)."""
    name = make_client(backend, namespace).submit(read_job_file(file))
    out.print(f"finetunejob/{name} created")


def get(
    name: str = typer.Argument(..., help="Job name."),
    output: OutputFormat = OutputOption,
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Show one job (state, progress, loss, registered model, evaluation figures)."""
    job = make_client(backend, namespace).get(name)
    print_job(out, job, output)
    if output in (OutputFormat.TABLE, OutputFormat.WIDE):
        print_evaluation(job)


def list_jobs(
    selector: str | None = typer.Option(
        None, "--selector", "-l", help="Label selector, e.g. team=vision."
    ),
    output: OutputFormat = OutputOption,
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """List jobs."""
    print_jobs(out, make_client(backend, namespace).list(selector), output)


def describe(
    name: str = typer.Argument(..., help="Job name."),
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Show a job in detail: spec highlights, conditions and events."""
    client = make_client(backend, namespace)
    job = client.get(name)
    print_description(out, job, client.events(name))
    print_evaluation(job)


def print_evaluation(job: FineTuneJob) -> None:
    """`Evaluation: dino 0.7120 (base 0.4010), ...` when the job's status has figures."""
    evaluation = job.status.evaluation if job.status is not None else None
    if evaluation is not None:
        out.out(f"Evaluation: {evaluation.summary()}", highlight=False)


def logs(
    name: str = typer.Argument(..., help="Job name."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Wait while pending and stream until the job ends."
    ),
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Print the job's training output."""
    for line in make_client(backend, namespace).logs(name, follow=follow):
        out.out(line, highlight=False)


def wait(
    name: str = typer.Argument(..., help="Job name."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Give up after this many seconds (exit code 3)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Wait until the job finishes, with a progress bar; exit 1 when it failed."""
    client = make_client(backend, namespace)
    first = client.progress(name)
    if quiet:
        job = client.wait(name, timeout=timeout)
    else:
        with TrainingProgressBar(err, name, first.total_steps) as bar:

            def show(progress: JobProgress) -> None:
                bar.update(
                    progress.step,
                    progress.total_steps,
                    progress.loss,
                    progress.eta_seconds,
                    description=f"{name} [{progress.state.value}]",
                )

            job = client.wait(name, timeout=timeout, callback=show)
    final = JobProgress.of(job)
    out.print(
        f"finetunejob/{name} {final.state.value.lower()}: {final.message or final.reason or ''}".rstrip(
            ": "
        )
    )


def delete(
    names: list[str] = typer.Argument(..., help="Job names."),
    backend: str | None = BackendOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Delete jobs (running ones are stopped)."""
    client = make_client(backend, namespace)
    for name in names:
        client.delete(name)
        out.print(f'finetunejob "{name}" deleted')


def run(
    file: str = typer.Argument(..., help="FineTuneJob YAML/JSON file, or - for stdin."),
    replace: bool = typer.Option(
        False, "--replace", help="Delete an earlier job of the same name first."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the trainer's output."),
) -> None:
    """Run a job here, now (embedded: local Ray, local MLflow store), with a progress bar."""
    from tuneforge.embedded.foreground import run_in_foreground

    job = read_job_file(file)
    settings = Settings()
    finished = run_job_with_progress(
        job, settings, replace=replace, verbose=verbose, run=run_in_foreground
    )
    report_finished_run(finished, settings)


def run_job_with_progress(
    job: FineTuneJob,
    settings: Settings,
    *,
    replace: bool,
    verbose: bool,
    run: Callable[..., FineTuneJob],
) -> FineTuneJob:
    """Run `job` in the foreground with a progress bar on stderr; return the finished job."""
    with TrainingProgressBar(err, f"{job.name} [starting]", job.spec.training.max_steps) as bar:

        def on_progress(progress: TrainingProgress) -> None:
            bar.update(
                progress.step,
                progress.total_steps,
                progress.loss,
                progress.eta_seconds,
                description=f"{job.name} [training]",
            )

        def on_line(line: str) -> None:
            if verbose:
                bar.log(line)

        try:
            return run(job, settings, replace=replace, on_progress=on_progress, on_line=on_line)
        except KeyboardInterrupt:
            err.print(f"interrupted: job {job.name!r} stopped")
            raise typer.Exit(130) from None


def report_finished_run(job: FineTuneJob, settings: Settings) -> None:
    """Print the outcome of a foreground run; exit 1 when it failed."""
    from tuneforge.embedded.records import JobRecordStore

    snapshot = JobProgress.of(job)
    log = JobRecordStore(settings.home).log_path(job.name)
    if snapshot.state == JobState.SUCCEEDED:
        mlflow = job.status.mlflow if job.status else None
        where = (
            f" → {mlflow.model_name} version {mlflow.model_version}"
            if mlflow and mlflow.model_version
            else ""
        )
        out.print(f"finetunejob/{job.name} succeeded{where} (log: {log})")
        return
    err.print(f"finetunejob/{job.name} failed ({snapshot.reason}): {snapshot.message}")
    err.print(f"full log: {log}")
    raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Attach the job and adapter commands to the root CLI."""
    for command, name in (
        (submit, "submit"),
        (get, "get"),
        (list_jobs, "list"),
        (describe, "describe"),
        (logs, "logs"),
        (wait, "wait"),
        (delete, "delete"),
        (run, "run"),
    ):
        app.command(name)(handle_errors(command))
