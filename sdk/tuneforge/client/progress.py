"""Estimating a training run's time left from its progress lines.

The lines' format and their parser are the contract's (`tuneforge.contract.progress`);
this module only fills in the ETA when the trainer does not report one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace

from tuneforge.contract.progress import TrainingProgress


class EtaEstimator:
    """Fills in `eta_seconds` from the recent step rate when the trainer does not report it."""

    def __init__(self, window: int = 20) -> None:
        """Estimate from the last `window` observations."""
        self._samples: deque[tuple[float, int]] = deque(maxlen=window)

    def observe(self, progress: TrainingProgress, now: float | None = None) -> TrainingProgress:
        """Record one observation; return it with an ETA when one can be estimated."""
        stamp = time.monotonic() if now is None else now
        if self._samples and progress.step < self._samples[-1][1]:
            self._samples.clear()  # a restart from a checkpoint: old rates no longer apply
        self._samples.append((stamp, progress.step))
        if progress.eta_seconds is not None or not progress.total_steps:
            return progress
        first_time, first_step = self._samples[0]
        elapsed, steps = stamp - first_time, progress.step - first_step
        if steps <= 0 or elapsed <= 0:
            return progress
        remaining = max(0, progress.total_steps - progress.step)
        return replace(progress, eta_seconds=remaining * elapsed / steps)
