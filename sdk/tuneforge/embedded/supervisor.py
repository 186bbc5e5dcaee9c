"""`python -m tuneforge.embedded.supervisor NAME`: run a submitted job in the background.

`LocalBackend.submit` starts this in its own session, so the job outlives the notebook or
terminal that submitted it. Settings come from the environment the backend prepared.
SIGTERM (sent by `delete`) stops the trainer and marks the job stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from types import FrameType

from tuneforge.api import ConditionStatus, ConditionType
from tuneforge.embedded.records import JobRecordStore
from tuneforge.embedded.runner import JobRunner, record_failure
from tuneforge.errors import JobNotFoundError
from tuneforge.settings import Settings


class _Terminated(Exception):
    """Raised inside the runner when SIGTERM arrives."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    """Run one stored job to completion; the exit code is 0 when it succeeded."""
    parser = argparse.ArgumentParser(prog="python -m tuneforge.embedded.supervisor")
    parser.add_argument("name", help="name of a job stored under TUNEFORGE_HOME/jobs")
    args = parser.parse_args(argv)
    settings = Settings()
    store = JobRecordStore(settings.home)
    runner = JobRunner(store, settings)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        job = runner.run(args.name)
    except _Terminated:
        return 143
    except JobNotFoundError:
        return 2
    except Exception as exc:  # the job must not stay Pending forever: record why it failed
        message = f"Embedded runner failed: {type(exc).__name__}: {exc}"
        with contextlib.suppress(JobNotFoundError):
            record_failure(store, args.name, message)
            store.set_runner_pid(args.name, None)
        sys.stderr.write(message + "\n")
        return 1
    summary = job.status.condition(ConditionType.SUCCEEDED) if job.status else None
    return 0 if summary is not None and summary.status == ConditionStatus.TRUE else 1


if __name__ == "__main__":
    sys.exit(main())
