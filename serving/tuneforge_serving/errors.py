"""Serving errors: each carries the HTTP status it is answered with.

They cross the Ray boundary as plain data (`ErrorInfo`), so a model replica never needs
to raise through Serve (which would turn them into 500s).
"""

from __future__ import annotations

from dataclasses import dataclass


class ServingError(Exception):
    """Base class; `status` is the HTTP status code the API answers with."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def info(self) -> ErrorInfo:
        """This error as picklable data."""
        return ErrorInfo(status=self.status, detail=self.detail, kind=type(self).__name__)


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
