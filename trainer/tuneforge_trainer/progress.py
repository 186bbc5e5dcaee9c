"""Machine-readable progress lines on stdout, beside the MLflow metrics.

The line format is the contract's (`tuneforge.contract.format_progress` / `format_result`);
this module times the run and writes the lines:

    tuneforge-progress {"event": "progress", "step": 3, "total_steps": 10, "loss": 0.12, ...}
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tuneforge.contract import format_progress


class ProgressPrinter:
    """Prints step, loss, learning rate, throughput and ETA; used on rank 0 only."""

    def __init__(self, total_steps: int, start_step: int = 0, stream: TextIO | None = None):
        """Count from `start_step` (a resumed run) to `total_steps`."""
        self.total_steps = total_steps
        self._start_step = start_step
        self._started = time.monotonic()
        self._stream = stream

    def eta_seconds(self, step: int) -> float | None:
        """Seconds left at the average rate since this printer started."""
        done = step - self._start_step
        if done <= 0:
            return None
        per_step = (time.monotonic() - self._started) / done
        return round(per_step * (self.total_steps - step), 1)

    def step(self, step: int, loss: float, lr: float, images_per_s: float) -> None:
        """Print one progress line."""
        line = format_progress(
            step, self.total_steps, loss, lr, images_per_s, self.eta_seconds(step)
        )
        write_line(line, self._stream)


def write_line(line: str, stream: TextIO | None = None) -> None:
    """Write one line to `stream` (stdout by default) and flush (Ray forwards worker stdout
    line by line)."""
    target = stream or sys.stdout
    target.write(line + "\n")
    target.flush()
