"""TuneForge's exception tree. Catch `TuneForgeError` for anything TuneForge raises on purpose.

TuneForgeError
├── ConfigurationError      settings missing or wrong (S3, MLflow, kubeconfig, backend)
├── BackendError            the job backend (API server, embedded runner) failed a request
├── JobNotFoundError        no job with that name
├── JobExistsError          a job with that name already exists
├── JobFailedError          the job finished with Succeeded=False (reason, message, job)
├── WaitTimeoutError        `wait` gave up before the job finished (job)
├── AdapterNotFoundError    no registered model, version or alias with that name (name, ref)
├── StorageError            object storage (S3) unreachable or a transfer failed
├── RegistryError           the MLflow registry unreachable or a request failed
└── UnsafeArtifactError     an artifact that is not safetensors / tuneforge-adapter.json
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneforge.api import FineTuneJob


class TuneForgeError(Exception):
    """Base of every error TuneForge raises on purpose."""


class ConfigurationError(TuneForgeError):
    """A setting is missing or invalid; the message names the variable and the fix."""


class BackendError(TuneForgeError):
    """The job backend could not complete a request (API server error, runner failure)."""


class JobNotFoundError(TuneForgeError, LookupError):
    """No job with that name exists."""


class JobExistsError(TuneForgeError):
    """A job with that name already exists."""


class JobFailedError(TuneForgeError):
    """The job finished unsuccessfully (`Succeeded=False`)."""

    def __init__(self, name: str, reason: str, message: str, job: FineTuneJob | None = None):
        """The failed job's name, the condition's reason and message, and the job."""
        super().__init__(f"job {name!r} failed ({reason}): {message}")
        self.name = name
        self.reason = reason
        self.message = message
        self.job = job


class WaitTimeoutError(TuneForgeError, TimeoutError):
    """`wait` reached its timeout before the job finished."""

    def __init__(self, name: str, timeout_s: float, job: FineTuneJob | None = None):
        """The job's name, the timeout, and the job as last read."""
        super().__init__(f"job {name!r} did not finish within {timeout_s:g} s")
        self.name = name
        self.timeout_s = timeout_s
        self.job = job


class AdapterNotFoundError(TuneForgeError, LookupError):
    """No registered model, version or alias matches the reference."""

    def __init__(self, message: str, *, name: str | None = None, ref: str | None = None):
        """The message (naming the reference), the registered model name and the reference."""
        super().__init__(message)
        self.name = name
        self.ref = ref


class StorageError(TuneForgeError):
    """Object storage (S3) is unreachable, or an upload or download failed."""


class RegistryError(TuneForgeError):
    """The MLflow tracking server / model registry is unreachable or refused a request."""


class UnsafeArtifactError(TuneForgeError):
    """An artifact that could run code when loaded (not safetensors, not the manifest)."""
