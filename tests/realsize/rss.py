"""Peak resident memory of this process and everything it starts (Ray included), sampled.

`ru_maxrss` only covers processes that were waited for, and Ray's workers are not this
process's children; so a thread samples the RSS of the whole process tree every
`interval_s` and keeps the largest total and the largest single process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

GB = 1024**3


@dataclass
class PeakRss:
    """The largest sampled RSS: the whole tree and its largest process, in bytes."""

    tree: int = 0
    largest_process: int = 0

    def line(self, what: str) -> str:
        """One printable line naming what was measured."""
        return (
            f"peak RSS {what}: {self.tree / GB:.2f} GB for the process tree, "
            f"{self.largest_process / GB:.2f} GB for its largest process"
        )


def _rss(process: psutil.Process) -> int:
    """The process's RSS, 0 when it has just exited."""
    try:
        return int(process.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def _sample(root: psutil.Process) -> tuple[int, int]:
    sizes = [_rss(process) for process in [root, *root.children(recursive=True)]]
    return sum(sizes), max(sizes)


@contextmanager
def peak_rss(interval_s: float = 0.25) -> Iterator[PeakRss]:
    """Sample this process's tree until the block ends; the result fills in as it runs."""
    peak = PeakRss()
    root = psutil.Process()
    done = threading.Event()

    def watch() -> None:
        while True:
            tree, largest = _sample(root)
            peak.tree = max(peak.tree, tree)
            peak.largest_process = max(peak.largest_process, largest)
            if done.wait(interval_s):
                return

    thread = threading.Thread(target=watch, name="peak-rss", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
