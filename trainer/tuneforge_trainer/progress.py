"""Machine-readable progress lines on stdout, beside the MLflow metrics.

Every line starts with `PROGRESS_PREFIX` and ends with one JSON object, so a parser can find
it behind Ray's `(RayTrainWorker pid=…)` prefix:

    tuneforge-progress {"event": "progress", "step": 3, "total_steps": 10, "loss": 0.12, ...}
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

PROGRESS_PREFIX = "tuneforge-progress "
RESULT_PREFIX = "tuneforge-result "


def format_event(prefix: str, event: str, **fields: Any) -> str:
    """One progress or result line (no newline)."""
    return prefix + json.dumps({"event": event, **fields}, sort_keys=False)


def parse_event(line: str) -> dict[str, Any] | None:
    """The JSON object of a progress or result line, or None for any other line."""
    for prefix in (PROGRESS_PREFIX, RESULT_PREFIX):
        start = line.find(prefix)
        if start >= 0:
            data = json.loads(line[start + len(prefix) :])
            return data if isinstance(data, dict) else None
    return None


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
        line = format_event(
            PROGRESS_PREFIX,
            "progress",
            step=step,
            total_steps=self.total_steps,
            loss=round(loss, 6),
            lr=lr,
            images_per_s=round(images_per_s, 3),
            eta_seconds=self.eta_seconds(step),
        )
        self.emit(line)

    def emit(self, line: str) -> None:
        """Write one line and flush (Ray forwards worker stdout line by line)."""
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
