"""kubectl-like output for the CLI: tables, `-o wide|yaml|json|name`, and `describe`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from tuneforge.api import FineTuneJob
from tuneforge.client.backend import JobEvent
from tuneforge.client.state import JobProgress
from tuneforge.contract import AdapterRef
from tuneforge.registry import RegisteredAdapter


class OutputFormat(str, Enum):
    """Output formats accepted by `-o/--output`."""

    TABLE = "table"
    WIDE = "wide"
    YAML = "yaml"
    JSON = "json"
    NAME = "name"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """A Kubernetes-style age (`45s`, `12m`, `3h`, `2d`) of an RFC 3339 timestamp."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`, or `-` for unknown."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _manifest(job: FineTuneJob) -> dict[str, Any]:
    return job.to_manifest(include_status=True)


def dump_data(data: Any, fmt: OutputFormat) -> str:
    """YAML or JSON text of plain data."""
    if fmt == OutputFormat.JSON:
        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False))


def print_jobs(console: Console, jobs: list[FineTuneJob], fmt: OutputFormat) -> None:
    """Print jobs as a table, names, or a YAML/JSON `List`."""
    if fmt in (OutputFormat.YAML, OutputFormat.JSON):
        data = {"apiVersion": "v1", "kind": "List", "items": [_manifest(j) for j in jobs]}
        console.out(dump_data(data, fmt), end="", highlight=False)
        return
    if fmt == OutputFormat.NAME:
        for job in jobs:
            console.out(f"finetunejob/{job.name}", highlight=False)
        return
    if not jobs:
        console.print("No jobs found.")
        return
    wide = fmt == OutputFormat.WIDE
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    columns = ["NAME", "METHOD", "STATE", "PROGRESS", "LOSS", "ETA", "MODEL"]
    if wide:
        columns += ["REASON", "RUN"]
    columns.append("AGE")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for job in jobs:
        table.add_row(*job_row(job, wide))
    console.print(table)


def job_row(job: FineTuneJob, wide: bool = False) -> list[str]:
    """One job's table cells, in the order of `print_jobs`' columns."""
    snapshot = JobProgress.of(job)
    status = job.status
    mlflow = status.mlflow if status else None
    model = "-"
    if mlflow is not None and mlflow.model_name:
        known = AdapterRef.of(mlflow.model_name, mlflow.model_version)
        model = str(known) if known.pinned else f"{known.name}/?"
    row = [
        job.name,
        job.spec.method.value,
        snapshot.state.value,
        f"{snapshot.step}/{snapshot.total_steps}",
        f"{snapshot.loss:.4g}" if snapshot.loss is not None else "-",
        duration(snapshot.eta_seconds) if not snapshot.state.finished else "-",
        model,
    ]
    if wide:
        row += [snapshot.reason or "-", (mlflow.run_id if mlflow else None) or "-"]
    created = (job.metadata.__pydantic_extra__ or {}).get("creationTimestamp")
    row.append(age(str(created) if created else None))
    return row


def print_job(console: Console, job: FineTuneJob, fmt: OutputFormat) -> None:
    """Print one job (a one-row table, its name, or its YAML/JSON manifest with status)."""
    if fmt in (OutputFormat.YAML, OutputFormat.JSON):
        console.out(dump_data(_manifest(job), fmt), end="", highlight=False)
    else:
        print_jobs(console, [job], fmt)


def print_description(console: Console, job: FineTuneJob, events: list[JobEvent]) -> None:
    """A `kubectl describe`-style view: summary, spec highlights, conditions, events."""
    snapshot = JobProgress.of(job)
    spec = job.spec
    status = job.status
    lines = [
        ("Name", job.name),
        ("Namespace", job.metadata.namespace or "-"),
        ("Labels", ",".join(f"{k}={v}" for k, v in job.metadata.labels.items()) or "<none>"),
        ("Method", spec.method.value),
        ("Base model", spec.base_model.uri),
        ("Dataset", spec.dataset.uri),
        (
            "Output",
            spec.output.registered_model + (f"@{spec.output.alias}" if spec.output.alias else ""),
        ),
        ("Steps", str(spec.training.max_steps)),
        (
            "Resources",
            f"{spec.resources.workers} worker(s) × {spec.resources.gpus_per_worker} GPU, {spec.resources.strategy.value}",
        ),
        ("State", snapshot.state.value),
        ("Progress", f"{snapshot.step}/{snapshot.total_steps} ({snapshot.percent}%)"),
        ("Loss", f"{snapshot.loss:.4g}" if snapshot.loss is not None else "-"),
        ("Started", (status.start_time if status else None) or "-"),
        ("Completed", (status.completion_time if status else None) or "-"),
        ("RayJob", (status.ray_job_name if status else None) or "-"),
    ]
    if status is not None and status.mlflow is not None:
        lines.append(("MLflow run", status.mlflow.run_id or "-"))
        if status.mlflow.model_name:
            lines.append(
                ("Registered", f"{status.mlflow.model_name} version {status.mlflow.model_version}")
            )
    width = max(len(key) for key, _ in lines) + 2
    for key, value in lines:
        console.out(f"{key + ':':<{width}}{value}", highlight=False)
    console.out("Conditions:", highlight=False)
    conditions = status.conditions if status else []
    if not conditions:
        console.out("  <none>", highlight=False)
    else:
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for column in ("  TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"):
            table.add_column(column, overflow="fold")
        for c in conditions:
            table.add_row(
                f"  {c.type}", c.status.value, c.reason, c.last_transition_time, c.message
            )
        console.print(table)
    console.out("Events:", highlight=False)
    if not events:
        console.out("  <none>", highlight=False)
        return
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("  TYPE", "REASON", "AGE", "FROM", "MESSAGE"):
        table.add_column(column, overflow="fold")
    for event in events:
        count = f" (x{event.count})" if event.count > 1 else ""
        table.add_row(
            f"  {event.type}",
            event.reason,
            age(event.time) + count,
            event.source or "-",
            event.message,
        )
    console.print(table)


def print_adapters(console: Console, adapters: list[RegisteredAdapter], fmt: OutputFormat) -> None:
    """Registered adapters: one row per version (table), or YAML/JSON."""
    if fmt in (OutputFormat.YAML, OutputFormat.JSON):
        data = [
            {
                "name": a.name,
                "aliases": a.aliases,
                "versions": [
                    {
                        "version": v.version,
                        "aliases": list(v.aliases),
                        "runId": v.run_id,
                        "source": v.source,
                        "job": v.job_name,
                        "created": v.created,
                    }
                    for v in a.versions
                ],
            }
            for a in adapters
        ]
        console.out(dump_data(data, fmt), end="", highlight=False)
        return
    if fmt == OutputFormat.NAME:
        for adapter in adapters:
            console.out(adapter.name, highlight=False)
        return
    if not adapters:
        console.print("No registered adapters.")
        return
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("MODEL", "VERSION", "ALIASES", "JOB", "CREATED"):
        table.add_column(column, no_wrap=True)
    for adapter in adapters:
        for version in adapter.versions:
            table.add_row(
                adapter.name,
                version.version,
                ",".join(version.aliases) or "-",
                version.job_name or "-",
                age(version.created),
            )
    console.print(table)


class TrainingProgressBar:
    """A rich progress bar of step, loss and ETA, fed by `TrainingProgress` or `JobProgress`."""

    def __init__(self, console: Console, description: str, total_steps: int) -> None:
        """A bar for one job of `total_steps` steps, printed on `console`."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("eta {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total_steps, loss="-", eta="-")

    def __enter__(self) -> TrainingProgressBar:
        """Start drawing."""
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop drawing (the last state stays on screen)."""
        self._progress.stop()

    def update(
        self,
        step: int,
        total_steps: int | None,
        loss: float | None,
        eta_seconds: float | None,
        description: str | None = None,
    ) -> None:
        """Show a new observation."""
        fields: dict[str, Any] = {
            "completed": step,
            "loss": f"{loss:.4f}" if loss is not None else "-",
            "eta": duration(eta_seconds),
        }
        if total_steps:
            fields["total"] = total_steps
        if description is not None:
            fields["description"] = description
        self._progress.update(self._task, **fields)

    def log(self, text: str) -> None:
        """Print a line above the bar."""
        self._progress.console.print(text, highlight=False, markup=False)
