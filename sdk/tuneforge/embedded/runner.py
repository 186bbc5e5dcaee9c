"""Run one FineTuneJob on this machine with the trainer's own entry point.

The runner starts `python -m tuneforge_trainer run --job -` (what the operator's RayJob runs
on a cluster) with the job as JSON on stdin and appends everything it prints to the job's
log. What it sees (the process running or exiting, the progress and result lines, the
version in MLflow) becomes status and events through the operator's status rules
(`tuneforge.api.status_rules`, via `JobRecordStore.observe`): the same conditions
(`Training`, `AdapterRegistered`, `Succeeded`), reasons and progress as on a cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

from tuneforge.api import FineTuneJob, FineTuneJobStatus, Reason
from tuneforge.api.status import now_rfc3339
from tuneforge.api.status_rules import (
    Observed,
    RunObservation,
    TrainingObservation,
    TrainingPhase,
    compute_status,
)
from tuneforge.client.progress import EtaEstimator
from tuneforge.contract import (
    TrainingProgress,
    TrainingResult,
    parse_progress_line,
    parse_result_line,
)
from tuneforge.embedded.environment import child_environment, prepare_home, tracking_uri
from tuneforge.embedded.mlflow_result import find_job_result
from tuneforge.embedded.records import JobRecordStore
from tuneforge.settings import Settings

TRAINER_MODULE = "tuneforge_trainer"
STATUS_WRITE_INTERVAL_S = 1.0
FAILURE_TAIL_LINES = 20


def trainer_command(python: str | None = None) -> list[str]:
    """The trainer's entry point, reading the job from stdin."""
    return [python or sys.executable, "-m", TRAINER_MODULE, "run", "--job", "-"]


def mark_pending(status: FineTuneJobStatus, generation: int | None) -> None:
    """Set the status rules' conditions of a job that nothing runs yet on `status`."""
    pending = compute_status(status, Observed(generation))
    for field in FineTuneJobStatus.model_fields:
        setattr(status, field, getattr(pending, field))


def record_failure(store: JobRecordStore, name: str, message: str) -> FineTuneJob:
    """Mark the job failed (`JobFailed`): it could not be run to the end. A finished job stays."""
    job = store.load(name)
    if job.status is not None and job.status.is_finished():
        return job
    failed = TrainingObservation(
        TrainingPhase.FAILED, Reason.JOB_FAILED.value, message, end_time=now_rfc3339()
    )
    return store.observe(name, failed)


class JobRunner:
    """Runs stored jobs to completion, updating their records as they progress."""

    def __init__(
        self,
        store: JobRecordStore,
        settings: Settings,
        command: Sequence[str] | None = None,
    ) -> None:
        """Run jobs from `store` with `settings` (command defaults to the trainer module)."""
        self.store = store
        self.settings = settings
        self.command = list(command) if command is not None else trainer_command()
        self._process: subprocess.Popen[str] | None = None
        self._running: TrainingObservation | None = None
        self._latest: TrainingProgress | None = None
        self._reported: TrainingResult | None = None

    def run(
        self,
        name: str,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> FineTuneJob:
        """Run the job named `name` until the trainer exits; return the finished job."""
        job = self.store.load(name)
        home = prepare_home(self.settings)
        tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
        process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            cwd=home,
            env=child_environment(self.settings),
            start_new_session=True,  # its own process group: stop() ends Ray's children too
        )
        self._process = process
        self._started(name, process.pid)
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(job.to_manifest()))
            process.stdin.close()
        except BrokenPipeError:
            pass  # the trainer exited early; its output says why
        try:
            self._follow_output(job, process.stdout, tail, on_progress, on_line)
            returncode = process.wait()
        except BaseException:
            self.stop()
            self._finished(job, None, tail, interrupted=True)
            raise
        finally:
            self._process = None
        return self._finished(job, returncode, tail, interrupted=False)

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop the running trainer (SIGTERM, then SIGKILL after `grace_s`).

        The trainer's clean stop marks its MLflow run KILLED and shuts down its Ray: 8-15 s
        measured on 2 busy cores, so the default grace leaves room for it.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()

    def _follow_output(
        self,
        job: FineTuneJob,
        stream: object,
        tail: deque[str],
        on_progress: Callable[[TrainingProgress], None] | None,
        on_line: Callable[[str], None] | None,
    ) -> None:
        """Log the trainer's output and record its progress (at most once a second)."""
        eta = EtaEstimator()
        last_write = 0.0
        written: TrainingProgress | None = None
        with self.store.log_path(job.name).open("a") as log:
            for raw in stream:  # type: ignore[attr-defined]
                line = str(raw).rstrip("\n")
                log.write(line + "\n")
                log.flush()
                tail.append(line)
                if on_line is not None:
                    on_line(line)
                parsed = parse_progress_line(line)
                if parsed is None:
                    self._reported = parse_result_line(line) or self._reported
                    continue
                if parsed.total_steps is None:
                    parsed = replace(parsed, total_steps=job.spec.training.max_steps)
                latest = self._latest = eta.observe(parsed)
                if on_progress is not None:
                    on_progress(latest)
                now = time.monotonic()
                if now - last_write >= STATUS_WRITE_INTERVAL_S:
                    self._observe_running(job.name, latest)
                    written, last_write = latest, now
        if self._latest is not None and self._latest != written:
            self._observe_running(job.name, self._latest)

    def _observe_running(self, name: str, progress: TrainingProgress) -> None:
        assert self._running is not None
        self.store.observe(name, self._running, _run(progress), progress.total_steps)

    def _started(self, name: str, pid: int) -> None:
        self.store.set_runner_pid(name, os.getpid(), trainer_pid=pid)
        self._running = TrainingObservation(
            TrainingPhase.RUNNING,
            Reason.TRAINING.value,
            f"Trainer process {pid} started",
            start_time=now_rfc3339(),
        )
        self.store.observe(name, self._running)

    def _finished(
        self,
        job: FineTuneJob,
        returncode: int | None,
        tail: deque[str],
        interrupted: bool,
    ) -> FineTuneJob:
        progress = self._latest
        run_id, version = self._registered(job, returncode)
        run = _run(progress, run_id, version) if progress or run_id or version else None
        if run is not None and self._reported is not None and self._reported.quality_gate:
            run = replace(run, quality_gate=self._reported.quality_gate)
        failure = _failure_message(returncode, tail, interrupted)
        if failure is None:
            training = TrainingObservation(
                TrainingPhase.SUCCEEDED,
                Reason.TRAINING_SUCCEEDED.value,
                "Training finished",
                end_time=now_rfc3339(),
            )
        else:
            reason = Reason.JOB_STOPPED if interrupted else Reason.JOB_FAILED
            training = TrainingObservation(
                TrainingPhase.FAILED, reason.value, failure, end_time=now_rfc3339()
            )
        total = progress.total_steps if progress else None
        finished = self.store.observe(job.name, training, run, total)
        self.store.set_runner_pid(job.name, None)
        return finished

    def _registered(
        self, job: FineTuneJob, returncode: int | None
    ) -> tuple[str | None, str | None]:
        """The run id and model version the trainer reported, else what MLflow has."""
        reported = self._reported
        if reported is not None and reported.model_version:
            return reported.run_id, reported.model_version
        if returncode == 0 and job.metadata.uid:
            found = find_job_result(tracking_uri(self.settings), job.metadata.uid, self.settings)
            if found is not None:
                return found.run_id, found.model_version
        return None, None


def _run(
    progress: TrainingProgress | None, run_id: str | None = None, version: str | None = None
) -> RunObservation:
    """The status rules' view of the trainer's latest progress and result."""
    return RunObservation(
        run_id=run_id,
        step=progress.step if progress else None,
        loss=progress.loss if progress else None,
        images_per_s=progress.images_per_s if progress else None,
        eta_seconds=progress.eta_seconds if progress else None,
        model_version=version,
    )


def _signal_group(leader_pid: int, signum: int) -> None:
    """Signal the process group the trainer leads (it was started in a new session)."""
    try:
        os.killpg(leader_pid, signum)
    except ProcessLookupError:
        pass


def _failure_message(returncode: int | None, tail: deque[str], interrupted: bool) -> str | None:
    if interrupted:
        return "Stopped before the trainer finished"
    if returncode == 0:
        return None
    lines = [line.strip() for line in tail if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    detail = (errors or lines or ["no output"])[-1]
    how = (
        f"was killed by signal {-returncode}"
        if returncode and returncode < 0
        else f"exited with code {returncode}"
    )
    return f"Trainer {how}: {detail[:2000]}"
