"""The interface every job backend implements (Kubernetes, embedded), and the event type."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from tuneforge.api import FineTuneJob


@dataclass(frozen=True)
class JobEvent:
    """One event about a job (a Kubernetes Event, or the embedded runner's equivalent)."""

    type: str
    """`Normal` or `Warning`."""
    reason: str
    """CamelCase reason, e.g. `RayJobCreated`."""
    message: str
    """Human-readable detail."""
    time: str | None = None
    """When it (last) happened, RFC 3339."""
    count: int = 1
    """How many times it happened."""
    source: str = ""
    """Who reported it (component name)."""


class JobBackend(Protocol):
    """Where jobs run. `Client` adds waiting, validation and the adapter registry on top."""

    def submit(self, job: FineTuneJob) -> str:
        """Create the job; return its name. Raises `JobExistsError` when the name is taken."""
        ...

    def get(self, name: str) -> FineTuneJob:
        """The job with its status. Raises `JobNotFoundError`."""
        ...

    def list(self, selector: str | None = None) -> list[FineTuneJob]:
        """Jobs, optionally filtered by a label selector (`key=value,key2=value2`)."""
        ...

    def delete(self, name: str) -> None:
        """Delete the job (and stop it when running). Raises `JobNotFoundError`."""
        ...

    def logs(self, name: str, follow: bool = True) -> Iterator[str]:
        """The job's output lines; with `follow`, waits while pending and streams until it ends."""
        ...

    def events(self, name: str) -> builtins.list[JobEvent]:
        """The job's events, oldest first."""
        ...
