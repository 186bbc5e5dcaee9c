"""Creates first: writes that can wait yield to pending RayJob creates during a burst.

When many FineTuneJobs arrive at once, every job's create path (status names the child,
then the RayJob POST) competes at the API server with the writes that merely record what
happened (the status after the create, its events). `CreatesFirst` holds those follow-up
writes back while any create path is in flight, for at most `max_wait_s`, and lets only
`slots` of them run at once; outside a burst they pass straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator


class CreatesFirst:
    """Counts create paths in flight; `follow_up()` waits until there are none (bounded)."""

    def __init__(self, slots: int = 2, max_wait_s: float = 5.0) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self._slots = asyncio.Semaphore(slots)
        self._max_wait_s = max_wait_s
        self._creating = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def creating(self) -> int:
        """Create paths in flight now."""
        return self._creating

    @contextlib.contextmanager
    def create_path(self) -> Iterator[None]:
        """Mark a job's create path (from naming the child to the create's answer)."""
        self._creating += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._creating -= 1
            if self._creating == 0:
                self._quiet.set()

    @contextlib.asynccontextmanager
    async def follow_up(self) -> AsyncIterator[None]:
        """Wait for a slot and for no create path in flight (at most `max_wait_s`)."""
        async with self._slots:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), timeout=self._max_wait_s)
            yield
