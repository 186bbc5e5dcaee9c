"""The embedded backend's job records: one folder per job under `<home>/jobs/<name>/`.

    job.json     the FineTuneJob with its status (camelCase, as the API server would store it)
    output.log   everything the trainer printed (stdout and stderr), appended as it runs
    events.jsonl one JSON event per line, oldest first
    runner.json  the pid of the process running the job (absent once it has ended)

Writes are atomic (temp file + rename) and status updates are serialised with a lock file,
so the CLI can read a record while the runner updates it. `observe` turns what the runner saw
of the trainer into status and events through the same rules as the operator
(`tuneforge.api.status_rules`).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from tuneforge.api import FineTuneJob, FineTuneJobStatus
from tuneforge.api.status import now_rfc3339
from tuneforge.api.status_rules import (
    Observed,
    RunObservation,
    TrainingObservation,
    compute_status,
    events_for,
)
from tuneforge.client.backend import JobEvent
from tuneforge.errors import JobExistsError, JobNotFoundError

JOB_FILE = "job.json"
LOG_FILE = "output.log"
EVENTS_FILE = "events.jsonl"
RUNNER_FILE = "runner.json"
LOCK_FILE = ".lock"


class JobRecordStore:
    """Job records under `<home>/jobs`."""

    def __init__(self, home: Path) -> None:
        """Keep records under `home/jobs` (created on first write)."""
        self.home = Path(home).expanduser()
        self.root = self.home / "jobs"

    def job_dir(self, name: str) -> Path:
        """The folder of one job (it may not exist)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid job name {name!r}: use a DNS label such as 'my-job'")
        return self.root / name

    def log_path(self, name: str) -> Path:
        """The job's output log."""
        return self.job_dir(name) / LOG_FILE

    def exists(self, name: str) -> bool:
        """Whether a record with this name exists."""
        return (self.job_dir(name) / JOB_FILE).is_file()

    def create(self, job: FineTuneJob) -> FineTuneJob:
        """Store a new job; raises `JobExistsError` when the name is taken."""
        directory = self.job_dir(job.name)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError:
            if self.exists(job.name):
                raise JobExistsError(
                    f"job {job.name!r} already exists: delete it first "
                    f"(`tuneforge delete {job.name}`) or choose another metadata.name"
                ) from None
        self._write_job(directory, job)
        (directory / LOG_FILE).touch()
        return job

    def load(self, name: str) -> FineTuneJob:
        """The stored job; raises `JobNotFoundError`."""
        path = self.job_dir(name) / JOB_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise JobNotFoundError(
                f"job {name!r} not found in {self.root}: list jobs with `tuneforge list`"
            ) from None
        return FineTuneJob.model_validate_json(text)

    def list(self) -> list[FineTuneJob]:
        """All stored jobs, by name."""
        if not self.root.is_dir():
            return []
        jobs = []
        for entry in sorted(self.root.iterdir()):
            with contextlib.suppress(JobNotFoundError, ValueError):
                jobs.append(self.load(entry.name))
        return jobs

    def update_status(self, name: str, change: Callable[[FineTuneJobStatus], None]) -> FineTuneJob:
        """Apply `change` to the job's status under the record's lock and store the result."""

        def changed(job: FineTuneJob) -> FineTuneJobStatus:
            status = job.status.model_copy(deep=True) if job.status else FineTuneJobStatus()
            change(status)
            return status

        return self._replace_status(name, changed)

    def observe(
        self,
        name: str,
        training: TrainingObservation,
        run: RunObservation | None = None,
        total_steps: int | None = None,
    ) -> FineTuneJob:
        """Record what was observed of the job's training: status and events by the status rules.

        `run` is what the trainer reported (None keeps the stored progress and MLflow
        status); `total_steps` the total it reported, else the spec's. The registration is
        looked up once, after the trainer exits, so a missing version is final at once.
        """
        before: FineTuneJobStatus | None = None

        def computed(job: FineTuneJob) -> FineTuneJobStatus:
            nonlocal before
            before = job.status
            reported = {"total_steps": total_steps} if total_steps else {}
            observed = Observed.of_job(
                job, training=training, run=run, registration_grace_s=0.0, **reported
            )
            return compute_status(job.status, observed)

        job = self._replace_status(name, computed)
        assert job.status is not None
        for event in events_for(before, job.status):
            self.append_event(
                name, JobEvent(event.type, event.reason, event.message, source="embedded")
            )
        return job

    def _replace_status(
        self, name: str, compute: Callable[[FineTuneJob], FineTuneJobStatus]
    ) -> FineTuneJob:
        directory = self.job_dir(name)
        with self._locked(directory):
            job = self.load(name)
            job.status = compute(job)
            self._write_job(directory, job)
            return job

    def delete(self, name: str) -> None:
        """Remove the record and its logs; raises `JobNotFoundError`."""
        if not self.exists(name):
            self.load(name)  # raises JobNotFoundError with the usual message
        shutil.rmtree(self.job_dir(name), ignore_errors=True)

    def append_event(self, name: str, event: JobEvent) -> None:
        """Record one event."""
        stamped = event if event.time else JobEvent(**{**asdict(event), "time": now_rfc3339()})
        with (self.job_dir(name) / EVENTS_FILE).open("a") as handle:
            handle.write(json.dumps(asdict(stamped)) + "\n")

    def events(self, name: str) -> builtins.list[JobEvent]:
        """The job's events, oldest first."""
        self.load(name)
        path = self.job_dir(name) / EVENTS_FILE
        if not path.is_file():
            return []
        with path.open() as handle:
            return [JobEvent(**json.loads(line)) for line in handle if line.strip()]

    def set_runner_pid(self, name: str, pid: int | None, trainer_pid: int | None = None) -> None:
        """Remember (or forget, with None) the runner's pid and the trainer process it started."""
        path = self.job_dir(name) / RUNNER_FILE
        if pid is None:
            path.unlink(missing_ok=True)
        elif path.parent.is_dir():
            _atomic_write(path, json.dumps({"pid": pid, "trainerPid": trainer_pid}))

    def runner_pids(self, name: str) -> tuple[int | None, int | None]:
        """The recorded (runner pid, trainer pid), each None when unknown."""
        try:
            data = json.loads((self.job_dir(name) / RUNNER_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None, None
        runner, trainer = data.get("pid"), data.get("trainerPid")
        return (
            runner if isinstance(runner, int) else None,
            trainer if isinstance(trainer, int) else None,
        )

    def _write_job(self, directory: Path, job: FineTuneJob) -> None:
        _atomic_write(directory / JOB_FILE, json.dumps(job.to_manifest(include_status=True)))

    @contextlib.contextmanager
    def _locked(self, directory: Path) -> Iterator[None]:
        if not directory.is_dir():
            raise JobNotFoundError(f"job {directory.name!r} not found in {self.root}")
        with (directory / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
