"""Run one FineTuneJob on this machine with the trainer's own entry point.

The runner starts `python -m tuneforge_trainer run --job -` (what the operator's RayJob runs
on a cluster) with the job as JSON on stdin, appends everything it prints to the job's log,
turns its progress lines into `status.progress`, and writes conditions like the operator's:
`Training` while the process runs, then `Succeeded` True or False and, when the trainer
registered a version in MLflow, `AdapterRegistered` and `status.mlflow`.
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

from tuneforge.api import (
    ConditionStatus,
    ConditionType,
    FineTuneJob,
    FineTuneJobStatus,
    MlflowStatus,
    ProgressStatus,
    Reason,
)
from tuneforge.api.status import now_rfc3339
from tuneforge.client.backend import JobEvent
from tuneforge.client.progress import (
    EtaEstimator,
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
    """Initial conditions of a job that has not started (as the operator writes them)."""
    status.observed_generation = generation
    status.set_condition(
        ConditionType.SUCCEEDED,
        ConditionStatus.UNKNOWN,
        Reason.PENDING,
        "Waiting for the embedded runner to start the trainer",
        generation,
    )


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
        self._reported: TrainingResult | None = None

    def run(
        self,
        name: str,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> FineTuneJob:
        """Run the job named `name` until the trainer exits; return the finished job."""
        job = self.store.load(name)
        generation = job.metadata.generation
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
        self._started(name, process.pid, generation)
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(job.to_manifest()))
            process.stdin.close()
        except BrokenPipeError:
            pass  # the trainer exited early; its output says why
        try:
            self._follow_output(name, process.stdout, tail, on_progress, on_line)
            returncode = process.wait()
        except BaseException:
            self.stop()
            self._finished(name, None, tail, generation, interrupted=True)
            raise
        finally:
            self._process = None
        return self._finished(name, returncode, tail, generation, interrupted=False)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the running trainer (SIGTERM, then SIGKILL after `grace_s`)."""
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
        name: str,
        stream: object,
        tail: deque[str],
        on_progress: Callable[[TrainingProgress], None] | None,
        on_line: Callable[[str], None] | None,
    ) -> None:
        eta = EtaEstimator()
        last_write = 0.0
        latest: TrainingProgress | None = None
        written: TrainingProgress | None = None
        total_default = self.store.load(name).spec.training.max_steps
        with self.store.log_path(name).open("a") as log:
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
                    parsed = TrainingProgress(
                        step=parsed.step,
                        total_steps=total_default,
                        loss=parsed.loss,
                        images_per_s=parsed.images_per_s,
                        eta_seconds=parsed.eta_seconds,
                    )
                latest = eta.observe(parsed)
                if on_progress is not None:
                    on_progress(latest)
                now = time.monotonic()
                if now - last_write >= STATUS_WRITE_INTERVAL_S:
                    self._write_progress(name, latest)
                    written, last_write = latest, now
        if latest is not None and latest != written:
            self._write_progress(name, latest)

    def _write_progress(self, name: str, progress: TrainingProgress) -> None:
        def change(status: FineTuneJobStatus) -> None:
            status.progress = ProgressStatus(
                step=progress.step,
                total_steps=progress.total_steps or 0,
                percent=progress.percent,
                eta_seconds=int(progress.eta_seconds) if progress.eta_seconds is not None else None,
                loss=f"{progress.loss:.4g}" if progress.loss is not None else None,
            )

        self.store.update_status(name, change)

    def _started(self, name: str, pid: int, generation: int | None) -> None:
        self.store.set_runner_pid(name, os.getpid(), trainer_pid=pid)

        def change(status: FineTuneJobStatus) -> None:
            status.start_time = now_rfc3339()
            status.set_condition(
                ConditionType.TRAINING,
                ConditionStatus.TRUE,
                Reason.TRAINING,
                f"Trainer process {pid} started",
                generation,
            )
            status.set_condition(
                ConditionType.SUCCEEDED,
                ConditionStatus.UNKNOWN,
                Reason.TRAINING,
                "Training",
                generation,
            )

        self.store.update_status(name, change)
        self.store.append_event(
            name,
            JobEvent(
                "Normal", "TrainingStarted", f"Started trainer process {pid}", source="embedded"
            ),
        )

    def _finished(
        self,
        name: str,
        returncode: int | None,
        tail: deque[str],
        generation: int | None,
        interrupted: bool,
    ) -> FineTuneJob:
        job = self.store.load(name)
        result: MlflowStatus | None = None
        reported = self._reported
        if reported is not None and reported.model_version:
            result = MlflowStatus(
                run_id=reported.run_id,
                model_name=reported.model_name or job.spec.output.registered_model,
                model_version=reported.model_version,
            )
        elif returncode == 0 and job.metadata.uid:
            result = find_job_result(tracking_uri(self.settings), job.metadata.uid, self.settings)
        failure = _failure_message(returncode, tail, interrupted)

        def change(status: FineTuneJobStatus) -> None:
            status.completion_time = now_rfc3339()
            if result is not None:
                status.mlflow = result
            if failure is None:
                status.set_condition(
                    ConditionType.TRAINING,
                    ConditionStatus.FALSE,
                    Reason.TRAINING_SUCCEEDED,
                    "Training finished",
                    generation,
                )
                registered = result is not None and result.model_version is not None
                if registered:
                    assert result is not None
                    status.set_condition(
                        ConditionType.ADAPTER_REGISTERED,
                        ConditionStatus.TRUE,
                        Reason.ADAPTER_REGISTERED,
                        f"Registered {result.model_name} version {result.model_version}",
                        generation,
                    )
                status.set_condition(
                    ConditionType.SUCCEEDED,
                    ConditionStatus.TRUE,
                    Reason.ADAPTER_REGISTERED if registered else Reason.TRAINING_SUCCEEDED,
                    "Job finished"
                    + (
                        f": {result.model_name} version {result.model_version}"
                        if registered and result
                        else ""
                    ),
                    generation,
                )
                if status.progress is not None and status.progress.total_steps:
                    status.progress.step = max(status.progress.step, status.progress.total_steps)
                    status.progress.percent = 100
                    status.progress.eta_seconds = 0
            else:
                reason = Reason.JOB_STOPPED if interrupted else Reason.JOB_FAILED
                status.set_condition(
                    ConditionType.TRAINING, ConditionStatus.FALSE, reason, failure, generation
                )
                status.set_condition(
                    ConditionType.SUCCEEDED, ConditionStatus.FALSE, reason, failure, generation
                )

        finished = self.store.update_status(name, change)
        if failure is None:
            self.store.append_event(
                name, JobEvent("Normal", "TrainingSucceeded", "Job finished", source="embedded")
            )
        else:
            self.store.append_event(
                name, JobEvent("Warning", "TrainingFailed", failure, source="embedded")
            )
        self.store.set_runner_pid(name, None)
        return finished


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
