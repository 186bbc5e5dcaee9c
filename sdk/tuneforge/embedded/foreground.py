"""Run a job in this process (`tuneforge run`, `tuneforge demo`): same runner, no supervisor."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

from tuneforge.api import FineTuneJob
from tuneforge.contract import TrainingProgress
from tuneforge.embedded.backend import LocalBackend, prepare_local_job
from tuneforge.embedded.runner import JobRunner
from tuneforge.settings import Settings


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Turn SIGTERM (e.g. `tuneforge delete` from another terminal) into KeyboardInterrupt."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_in_foreground(
    job: FineTuneJob,
    settings: Settings,
    *,
    replace: bool = False,
    on_progress: Callable[[TrainingProgress], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> FineTuneJob:
    """Record `job` under `settings.home` and run it to completion; return the finished job.

    With `replace`, an existing job of the same name is deleted first. The record, its log
    and its status are the same as for a job submitted to the embedded backend, so
    `tuneforge get/logs/describe` work on it. Ctrl-C or SIGTERM stop the trainer and mark
    the job stopped.
    """
    backend = LocalBackend(settings)
    if replace and backend.store.exists(job.name):
        backend.delete(job.name)
    backend.store.create(prepare_local_job(job))
    runner = JobRunner(backend.store, settings)
    with sigterm_as_keyboard_interrupt():
        return runner.run(job.name, on_progress=on_progress, on_line=on_line)
