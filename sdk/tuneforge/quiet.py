"""Third-party chatter kept off the user's terminal: each source named, with why it is safe.

The CLI prints only lines a user can act on. What the libraries it drives print on their own:

- MLflow logs `INFO ... Creating initial MLflow database tables` when it opens a new SQLite
  store: routine set-up. `MLFLOW_LOGGING_LEVEL=WARNING` keeps its warnings and errors.
- transformers warns that torchvision is not installed and falls back to PIL image
  processors (TuneForge never uses them). `TRANSFORMERS_VERBOSITY=error` keeps its errors.
- Ray's driver logs `Started a local Ray instance` and Serve's `Started Serve ...`,
  `Application ... is ready` at INFO: the CLI says what it started in its own words.
- Ray's C++ core prints `network_util.cc: Failed to determine local IP via external
  connectivity` when it looks for the machine's address: on a machine without a route out
  (TuneForge's embedded mode binds to 127.0.0.1) the fallback it names is the right answer.
  `native_noise_filtered()` drops exactly that line from what `ray.init` writes to stderr
  and passes every other line through.

Warnings and errors from all of them still reach the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

QUIET_ENV = {"MLFLOW_LOGGING_LEVEL": "WARNING", "TRANSFORMERS_VERBOSITY": "error"}
"""Set (unless the user set them) before MLflow or transformers is imported."""

QUIET_LOGGERS = ("ray", "ray.serve", "mlflow")
"""Python loggers whose INFO lines are routine set-up; their warnings still show."""

NATIVE_NOISE = (re.compile(r"network_util\.cc:\d+: Failed to determine local IP"),)
"""Lines of Ray's C++ core that name a fallback which is correct here."""


def quiet_third_party() -> None:
    """Lower the libraries' routine INFO output (see the module docstring for each source)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Run the block with file descriptor 2 captured; replay it without `NATIVE_NOISE` lines.

    For short native calls only (`ray.init`): their stderr appears when the block ends.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not any(pattern.search(line) for pattern in NATIVE_NOISE)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
