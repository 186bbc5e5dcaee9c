"""Bounded retries of registry operations while MLflow is unreachable.

MLflow's client retries each HTTP request on its own, by default 7 times with a backoff
factor of 2 and a 120 s timeout: one call can block for minutes. TuneForge bounds both
layers explicitly, from `tuneforge.settings.Settings`:

- MLflow's own knobs (`mlflow_http_max_retries`, `mlflow_http_backoff_factor`,
  `mlflow_http_timeout_s`) make one call give up within seconds. MLflow reads them only
  from its environment variables (`MLFLOW_HTTP_REQUEST_*`), so `apply_mlflow_http_settings`
  writes the values in force there (Settings reads those same variables first, so a value
  the user set is kept). Only for an HTTP tracking URI; the embedded SQLite store has none.
- `RetryPolicy` repeats a whole operation (`registry_retry_attempts`, first pause
  `registry_retry_backoff_s` doubling up to `registry_retry_max_backoff_s`, all within
  `registry_retry_total_s`) while the failure says MLflow is unreachable
  (`mlflow_unavailable`). Any other failure is raised at once. When the bound is spent,
  `RegistryUnavailableError` names the URI, what was tried, and where the adapter stays.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from tuneforge.errors import RegistryError
from tuneforge.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

UNAVAILABLE_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}
)
"""MLflow error codes that mean "try again later"."""

REQUEST_FAILED_PREFIX = "API request to "
"""How MLflow's HTTP client words a request that never got an answer (refused, timed out,
or 5xx after its own retries)."""


class RegistryUnavailableError(RegistryError):
    """MLflow stayed unreachable through every attempt the retry policy allowed."""

    def __init__(self, message: str, tracking_uri: str, attempts: int, elapsed_s: float) -> None:
        """`message` for the user; the URI, the attempts made and the seconds spent."""
        super().__init__(message)
        self.tracking_uri = tracking_uri
        self.attempts = attempts
        self.elapsed_s = elapsed_s


def mlflow_unavailable(error: BaseException) -> bool:
    """True when `error` (or an error it was raised from) says MLflow did not answer.

    Connection refused, timeouts and 5xx answers after MLflow's own retries count; a
    "not found", a refused request or a bad value does not (retrying cannot help those).
    """
    return _unanswered(error) is not None


def _unanswered(error: BaseException) -> BaseException | None:
    """The error in `error`'s chain that says MLflow did not answer, if any."""
    from mlflow.exceptions import MlflowException

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, MlflowException):
            if seen.error_code in UNAVAILABLE_CODES or seen.message.startswith(
                REQUEST_FAILED_PREFIX
            ):
                return seen
        elif isinstance(seen, ConnectionError | TimeoutError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to repeat a registry operation while MLflow is unreachable."""

    attempts: int
    """Attempts in all, the first included."""
    backoff_s: float
    """Pause after the first failure; doubled after each further one."""
    max_backoff_s: float
    """Longest single pause."""
    total_s: float
    """No attempt starts later than this many seconds after the first."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy in `settings` (`registry_retry_*`)."""
        return cls(
            attempts=settings.registry_retry_attempts,
            backoff_s=settings.registry_retry_backoff_s,
            max_backoff_s=settings.registry_retry_max_backoff_s,
            total_s=settings.registry_retry_total_s,
        )

    def pauses(self) -> Iterator[float]:
        """The pause before each attempt after the first (attempts - 1 of them)."""
        pause = self.backoff_s
        for _ in range(self.attempts - 1):
            yield min(pause, self.max_backoff_s)
            pause *= 2

    def call(
        self,
        operation: Callable[[], T],
        tracking_uri: str,
        what: str,
        kept_at: str,
    ) -> T:
        """`operation()`, repeated while `mlflow_unavailable` says so, within this policy.

        `what` names the operation and `kept_at` where its data stays, for the error raised
        when the bound is spent (RegistryUnavailableError).
        """
        started = time.monotonic()
        for attempt, pause in enumerate([*self.pauses(), None], start=1):
            outcome = _failure(operation)
            if not isinstance(outcome, _Failure):
                return outcome
            elapsed = time.monotonic() - started
            if pause is None or elapsed + pause > self.total_s:
                raise self._spent(
                    outcome.error, tracking_uri, what, kept_at, attempt, elapsed
                ) from outcome.error
            log.warning(
                "MLflow at %s did not answer (%s, attempt %d of %d); retrying in %.1f s",
                tracking_uri,
                what,
                attempt,
                self.attempts,
                pause,
            )
            time.sleep(pause)
        raise AssertionError("not reached: the last attempt has no pause and raises above")

    def _spent(
        self,
        error: Exception,
        tracking_uri: str,
        what: str,
        kept_at: str,
        attempts: int,
        elapsed: float,
    ) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"MLflow at {tracking_uri} did not answer: {what} failed {attempts} time(s) over "
            f"{elapsed:.0f} s (bound: TUNEFORGE_REGISTRY_RETRY_ATTEMPTS={self.attempts}, "
            f"TUNEFORGE_REGISTRY_RETRY_TOTAL_S={self.total_s:g}); last error: "
            f"{_first_line(error)}. Nothing is lost: the adapter stays in {kept_at}. Once "
            "MLflow answers, run the same job again (same uid: it resumes at its last step "
            "and only registers), or raise TUNEFORGE_REGISTRY_RETRY_TOTAL_S to wait longer.",
            tracking_uri,
            attempts,
            elapsed,
        )


@dataclass(frozen=True)
class _Failure:
    error: Exception


def _failure(operation: Callable[[], T]) -> T | _Failure:
    """`operation()`, or the failure when it says MLflow did not answer (others propagate)."""
    try:
        return operation()
    except Exception as error:
        if not mlflow_unavailable(error):
            raise
        return _Failure(error)


def _first_line(error: BaseException) -> str:
    """What MLflow's client said (not a wrapper's reading of it), short, with the OS error."""
    lines = str(_unanswered(error) or error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    cause = _OS_ERROR.search(text)
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[:MAX_ERROR_CHARS] + "..." + (f" ({cause.group(0)})" if cause else "")


MAX_ERROR_CHARS = 200
"""How much of the last error the message quotes."""
_OS_ERROR = re.compile(r"\[Errno \d+\] [^'\")]+")


MLFLOW_HTTP_VARIABLES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "mlflow_http_max_retries",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "mlflow_http_backoff_factor",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "mlflow_http_timeout_s",
}
"""MLflow's HTTP retry variables and the Settings fields whose values they get."""


def mlflow_http_environment(settings: Settings) -> dict[str, str]:
    """MLflow's HTTP retry variables with the values in force in `settings`."""
    return {name: str(getattr(settings, field)) for name, field in MLFLOW_HTTP_VARIABLES.items()}


def apply_mlflow_http_settings(settings: Settings) -> None:
    """Give MLflow's HTTP client the bounds in `settings` (for an HTTP tracking URI only).

    MLflow reads these knobs from its environment variables on every request and offers no
    other way to set them for its tracking client; `Settings` read the same variables first.
    """
    if settings.resolved_tracking_uri().startswith(("http://", "https://")):
        os.environ.update(mlflow_http_environment(settings))
