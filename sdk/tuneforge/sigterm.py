"""SIGTERM handled like Ctrl-C in the processes that start Ray (`tuneforge serve`, the trainer).

Kubernetes stops a pod with SIGTERM. During `ray.init`, Ray's driver installs a C++
failure-signal handler that answers SIGTERM with a stack dump ("*** SIGTERM received") and
an abort, so no `finally` runs: Serve and the Ray cluster this process started stay behind.
`raise_on_sigterm()`, called after Ray has started, puts a Python handler back that raises
`Terminated` (a KeyboardInterrupt) in the main thread: the same clean-up as Ctrl-C runs.
Ray may re-raise it as a plain KeyboardInterrupt (a blocking `ray.get` does), so
`received()` tells whether SIGTERM was the cause.
"""

from __future__ import annotations

import signal
from types import FrameType

EXIT_TERMINATED = 143
"""Exit status of a process that stopped because of SIGTERM (128 + 15, the shell convention)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread so Ctrl-C's clean-up runs."""


_received = False


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _received
    _received = True
    raise Terminated


def received() -> bool:
    """Whether SIGTERM arrived since `raise_on_sigterm()` was called."""
    return _received


def raise_on_sigterm() -> bool:
    """Make SIGTERM raise `Terminated`; call again after `ray.init`, which replaces it.

    Returns False (and changes nothing) outside the main thread, where Python cannot set
    signal handlers.
    """
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        return False
    return True
