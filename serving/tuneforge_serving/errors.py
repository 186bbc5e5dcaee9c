"""Serving errors: each carries the HTTP status it is answered with.

They cross the Ray boundary as plain data (`ErrorInfo`), so a model replica never needs
to raise through Serve (which would turn them into 500s).

A `detail` is written for the API's caller: said once, saying what the caller can change,
and never naming the server's internals (MLflow or S3 addresses, local paths, CLI
commands). The registry's own errors carry those for operators; `hide_cause` logs them on
the server and answers with the caller's message instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)


class ServingError(Exception):
    """Base class; `status` is the HTTP status code the API answers with."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def info(self) -> ErrorInfo:
        """This error as picklable data."""
        return ErrorInfo(status=self.status, detail=self.detail, kind=type(self).__name__)


_E = TypeVar("_E", bound=ServingError)


class AdapterUnknown(ServingError):
    """The registry has no such adapter/version/alias."""

    status = 404


class AdapterRejected(ServingError):
    """The adapter exists but cannot be served: wrong base model, not safetensors, or
    outside the hot-swap contract (rank, target modules, vector count)."""

    status = 422


class LimitExceeded(ServingError):
    """A request beyond a configured limit (size, steps, images, prompt tokens, adapters)."""

    status = 422


class Overloaded(ServingError):
    """Too many requests in flight or queued: retry later."""

    status = 429


class Unavailable(ServingError):
    """The model deployment cannot take the request now (starting, or its queue is full)."""

    status = 503


class TimedOut(ServingError):
    """The request ran past `request_timeout_s`."""

    status = 504


def hide_cause(error: _E, cause: BaseException) -> _E:
    """`error` for the caller; `cause` (which may name internal addresses) logged here only."""
    log.warning("%s (%s: %s)", error.detail, type(cause).__name__, cause)
    return error


@dataclass(frozen=True)
class ErrorInfo:
    """A ServingError as data (returned, not raised, from model replicas)."""

    status: int
    detail: str
    kind: str

    def to_exception(self) -> ServingError:
        """Rebuild the matching ServingError."""
        for cls in (
            AdapterUnknown,
            AdapterRejected,
            LimitExceeded,
            Overloaded,
            Unavailable,
            TimedOut,
        ):
            if cls.__name__ == self.kind:
                return cls(self.detail)
        error = ServingError(self.detail)
        error.status = self.status
        return error
