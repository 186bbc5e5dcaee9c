"""The trainer's errors, rooted in the shared `tuneforge.errors` tree when it is available.

`InvalidTrainingInput` is what the pre-flight checks raise: one message that says what is
wrong, where (field, file or URI) and how to fix it. The CLI maps it to exit code 2.
"""

from __future__ import annotations

try:  # the shared exception tree (sdk/tuneforge/errors.py)
    from tuneforge.errors import ConfigurationError, TuneForgeError
except ImportError:  # pragma: no cover - only before the shared module exists

    class TuneForgeError(Exception):  # type: ignore[no-redef]
        """Base of every TuneForge error."""

    class ConfigurationError(TuneForgeError, ValueError):  # type: ignore[no-redef]
        """A job or setting is invalid."""


class InvalidTrainingInput(ConfigurationError):
    """The job cannot train: bad data, tokens, target modules, credentials or services."""


class ServiceUnavailable(TuneForgeError):
    """A service the job needs (S3, MLflow, Ray) cannot be reached."""


class TrainingFailed(TuneForgeError):
    """Training started but did not finish (a worker error after all retries)."""
