"""The embedded (local) job backend: jobs run as processes on this machine.

`submit` stores the job and starts `python -m tuneforge.embedded.supervisor NAME` in its own
session; that process runs the trainer's entry point and keeps the record's status current.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tuneforge.api import FineTuneJob, FineTuneJobStatus
from tuneforge.api.status import now_rfc3339
from tuneforge.client.backend import JobEvent
from tuneforge.client.selectors import matches_selector
from tuneforge.embedded.environment import child_environment
from tuneforge.embedded.records import JobRecordStore
from tuneforge.embedded.runner import mark_pending, record_failure
from tuneforge.settings import Settings

LOG_POLL_INTERVAL_S = 0.2
STOP_GRACE_S = 20.0
SUPERVISOR_MODULE = "tuneforge.embedded.supervisor"


def absolute_local_uris(job: FineTuneJob, base: Path | None = None) -> None:
    """Make relative local URIs (`./data`) absolute against `base` (default: the cwd).

    The trainer runs in the state directory, so `./data` must be resolved where the user
    typed it: the base model, dataset, class images and evaluator models.
    """
    root = base or Path.cwd()
    spec = job.spec

    def fix(uri: str | None) -> str | None:
        if uri is not None and uri.startswith("./"):
            return str((root / uri).resolve())
        return uri

    spec.base_model.uri = fix(spec.base_model.uri) or spec.base_model.uri
    spec.dataset.uri = fix(spec.dataset.uri) or spec.dataset.uri
    spec.dataset.class_data_uri = fix(spec.dataset.class_data_uri)
    if spec.evaluation is not None:
        spec.evaluation.clip_model = fix(spec.evaluation.clip_model) or spec.evaluation.clip_model
        spec.evaluation.dino_model = fix(spec.evaluation.dino_model) or spec.evaluation.dino_model


def prepare_local_job(job: FineTuneJob) -> FineTuneJob:
    """A copy of `job` with the metadata and initial status the API server would add."""
    prepared = job.model_copy(deep=True)
    absolute_local_uris(prepared)
    meta = prepared.metadata
    meta.uid = meta.uid or str(uuid.uuid4())
    meta.generation = meta.generation or 1
    meta.namespace = meta.namespace or "local"
    extra = meta.__pydantic_extra__
    if extra is not None:
        extra.setdefault("creationTimestamp", now_rfc3339())
    status = FineTuneJobStatus()
    mark_pending(status, meta.generation)
    prepared.status = status
    return prepared


class LocalBackend:
    """Jobs stored under `Settings.home/jobs` and run by background processes on this machine."""

    def __init__(self, settings: Settings) -> None:
        """Keep state under `settings.home`."""
        self.settings = settings
        self.store = JobRecordStore(settings.home)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def submit(self, job: FineTuneJob) -> str:
        """Store the job and start its runner in the background; return its name."""
        prepared = self.store.create(prepare_local_job(job))
        name = prepared.name
        log = self.store.log_path(name).open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_environment(self.settings),
                cwd=self.store.home,
                start_new_session=True,
            )
        finally:
            log.close()
        self._children[name] = process
        self.store.set_runner_pid(name, process.pid)
        self.store.append_event(
            name,
            JobEvent(
                "Normal", "Submitted", f"Runner process {process.pid} started", source="embedded"
            ),
        )
        return name

    def get(self, name: str) -> FineTuneJob:
        """The job's record, marked failed when its runner died without finishing it."""
        job = self.store.load(name)
        if job.status is not None and job.status.is_finished():
            return job
        runner, _ = self.store.runner_pids(name)
        if runner is not None and not self._alive(name, runner):
            job = self._mark_lost(name, runner)
        return job

    def list(self, selector: str | None = None) -> list[FineTuneJob]:
        """Stored jobs whose labels match `selector`."""
        return [
            self.get(job.name)
            for job in self.store.list()
            if matches_selector(job.metadata.labels, selector)
        ]

    def delete(self, name: str) -> None:
        """Stop the job's runner if it is running, then remove its record and logs."""
        self.store.load(name)
        runner, trainer = self.store.runner_pids(name)
        if runner is not None and self._alive(name, runner):
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            while self._alive(name, runner) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive(name, runner):
                for pid, kill in ((trainer, os.killpg), (runner, os.kill)):
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            kill(pid, signal.SIGKILL)
        self._children.pop(name, None)
        self.store.delete(name)

    def logs(self, name: str, follow: bool = True) -> Iterator[str]:
        """Lines of the job's output; with `follow`, waits for more until the job ends."""
        self.store.load(name)
        path = self.store.log_path(name)
        pending = ""
        handle = None
        try:
            while True:
                if handle is None and path.exists():
                    handle = path.open("r", errors="replace")
                chunk = handle.readline() if handle is not None else ""
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        yield pending.rstrip("\n")
                        pending = ""
                    continue
                if not follow or not self.store.exists(name):
                    break
                job = self.get(name)
                if job.status is not None and job.status.is_finished():
                    if handle is not None:
                        rest = handle.read()
                        pending += rest
                        if rest:
                            continue
                    break
                time.sleep(LOG_POLL_INTERVAL_S)
            if pending:
                yield pending.rstrip("\n")
        finally:
            if handle is not None:
                handle.close()

    def events(self, name: str) -> builtins.list[JobEvent]:
        """The job's events, oldest first."""
        return self.store.events(name)

    def _alive(self, name: str, pid: int) -> bool:
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            return child.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _is_zombie(pid)

    def _mark_lost(self, name: str, pid: int) -> FineTuneJob:
        message = f"The embedded runner (pid {pid}) ended without finishing the job; see its logs"
        job = record_failure(self.store, name, message)
        self.store.set_runner_pid(name, None)
        return job


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
