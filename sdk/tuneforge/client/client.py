"""`tuneforge.Client`: submit, follow and manage FineTuneJobs, and manage registered adapters.

    import tuneforge
    from tuneforge.client.builders import lora_job

    client = tuneforge.Client()                  # backend from TUNEFORGE_BACKEND (local by default)
    name = client.submit(lora_job("dog", "./data/dog", "a photo of sks dog",
                                  registered_model="dog-lora", steps=200))
    job = client.wait(name, timeout=3600, callback=lambda p: print(p.step, p.loss))
    for line in client.logs(name, follow=False):
        ...

The SDK never prints; it returns data and raises the errors in `tuneforge.errors`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge.api import ConditionStatus, ConditionType, FineTuneJob, load_job
from tuneforge.client.backend import JobBackend, JobEvent
from tuneforge.client.state import JobProgress
from tuneforge.errors import ConfigurationError, JobFailedError, WaitTimeoutError
from tuneforge.registry import AdapterRegistry, RegisteredAdapter, RegisteredVersion
from tuneforge.settings import Settings

if TYPE_CHECKING:
    from tuneforge.compare import ComparisonReport

BACKENDS = ("local", "kubernetes")
DEFAULT_POLL_INTERVAL_S = 1.0

JobSource = FineTuneJob | dict[str, Any] | str | Path


def make_backend(settings: Settings, namespace: str | None = None) -> JobBackend:
    """The backend named by `settings.backend`."""
    if settings.backend == "local":
        from tuneforge.embedded.backend import LocalBackend

        return LocalBackend(settings)
    if settings.backend == "kubernetes":
        from tuneforge.client.kubernetes_backend import KubernetesBackend

        return KubernetesBackend(settings, namespace=namespace)
    raise ConfigurationError(
        f"unknown backend {settings.backend!r} (TUNEFORGE_BACKEND / --backend): "
        f"use one of {', '.join(BACKENDS)}"
    )


class Client:
    """Submit and follow FineTuneJobs on a backend, and manage registered adapters."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: str | JobBackend | None = None,
        namespace: str | None = None,
    ) -> None:
        """Use `settings` (default: from the environment) and a backend.

        `backend` is `"local"`, `"kubernetes"`, a `JobBackend` instance, or None for
        `settings.backend`. `namespace` overrides `settings.namespace` (Kubernetes only).
        """
        self.settings = settings or Settings()
        if isinstance(backend, str):
            self.settings = self.settings.model_copy(update={"backend": backend})
            backend = None
        self.backend: JobBackend = (
            backend if backend is not None else make_backend(self.settings, namespace)
        )

    def submit(self, job: JobSource) -> str:
        """Validate and create a job (a FineTuneJob, a manifest dict, YAML text or a file)."""
        return self.backend.submit(as_job(job))

    def get(self, name: str) -> FineTuneJob:
        """The job with its current status."""
        return self.backend.get(name)

    def list(self, selector: str | None = None) -> builtins.list[FineTuneJob]:
        """Jobs, optionally filtered by a label selector such as `team=vision`."""
        return self.backend.list(selector)

    def delete(self, name: str) -> None:
        """Delete a job (stopping it if it runs)."""
        self.backend.delete(name)

    def logs(self, name: str, follow: bool = True) -> Iterator[str]:
        """The job's output, line by line; with `follow`, waits while pending and streams."""
        return self.backend.logs(name, follow=follow)

    def events(self, name: str) -> builtins.list[JobEvent]:
        """The job's events, oldest first."""
        return self.backend.events(name)

    def progress(self, name: str) -> JobProgress:
        """A snapshot of the job's state and progress."""
        return JobProgress.of(self.get(name))

    def wait(
        self,
        name: str,
        timeout: float | None = None,
        callback: Callable[[JobProgress], None] | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
    ) -> FineTuneJob:
        """Wait until the job finishes; return it, or raise `JobFailedError`/`WaitTimeoutError`.

        `callback` receives a `JobProgress` whenever the state or progress changes (and once
        at the start). `timeout` is in seconds; None waits forever.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: JobProgress | None = None
        while True:
            job = self.get(name)
            snapshot = JobProgress.of(job)
            if callback is not None and snapshot != last:
                callback(snapshot)
            last = snapshot
            if job.status is not None and job.status.is_finished():
                return raise_if_failed(job)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(name, float(timeout or 0), job)
            pause = poll_interval
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            time.sleep(pause)

    def adapters(self) -> builtins.list[RegisteredAdapter]:
        """Registered adapters (models, versions, aliases) in the configured MLflow."""
        return AdapterRegistry(self.settings).describe_adapters()

    def promote(self, model: str, version: str | int, alias: str, *, force: bool = False) -> None:
        """Point `alias` (e.g. `production`) of a registered adapter at `version`.

        A version whose quality gate (`output.promoteIf`) failed is refused with
        `QualityGateHeldBack` unless `force` is true: the documented override.
        """
        from tuneforge.contract import AdapterRef
        from tuneforge.registry.register import check_promotable

        registry = AdapterRegistry(self.settings)
        registry.resolve(AdapterRef.of(model, version))  # AdapterNotFoundError naming it
        check_promotable(registry.store, model, version, force)
        registry.promote(model, version, alias)

    def compare(
        self, *refs: str, output: str | Path | None = None, image_size: int = 256
    ) -> ComparisonReport:
        """One HTML page comparing jobs and versions (`my-job`, `toy/3`, `toy@production`).

        Metrics table (with the DreamBooth paper's rows as reference), loss and metric curves,
        and each prompt's images side by side with the base model's; written to `output` when
        given. See `tuneforge.compare.compare_runs` and docs/evaluation.md.
        """
        from tuneforge.compare import compare_runs

        return compare_runs(refs, self.settings, self.get, output=output, image_size=image_size)

    def import_adapter(
        self,
        path: str | Path,
        name: str,
        *,
        base_model: str | None = None,
        alias: str | None = None,
        token: str | None = None,
        max_rank: int | None = None,
    ) -> RegisteredVersion:
        """Register a diffusers/peft, kohya/A1111 LoRA or a diffusers/A1111 embedding file.

        The file is converted to the layout serving reads and checked against the base's
        shapes and serving's slots (`max_rank`: the largest rank of the server's
        `hotswap.rankBuckets`; default serving's default, 64); see
        `tuneforge.adapters.import_adapter`. Needs the torch stack for LoRA files.
        """
        from tuneforge.adapters import ServingLimits, import_adapter

        limits = ServingLimits(max_rank=max_rank) if max_rank else None
        return import_adapter(
            path,
            name,
            base_model=base_model,
            alias=alias,
            token=token,
            limits=limits,
            settings=self.settings,
        )

    def export_adapter(self, ref: str, path: str | Path, export_format: str = "kohya") -> Path:
        """Write registered adapter `ref` (`name`, `name@alias`, `name/3`) to `path`.

        `export_format`: `kohya` (kohya-ss / A1111 / ComfyUI keys) or `diffusers`.
        """
        from tuneforge.adapters import export_adapter

        return export_adapter(ref, path, export_format, settings=self.settings)


def as_job(source: JobSource) -> FineTuneJob:
    """A validated FineTuneJob from a model, a manifest dict, YAML/JSON text or a file path."""
    if isinstance(source, FineTuneJob):
        return source
    if isinstance(source, Path):
        return load_job(source)
    return load_job(source)


def raise_if_failed(job: FineTuneJob) -> FineTuneJob:
    """Return a finished job, or raise `JobFailedError` when `Succeeded` is False."""
    summary = job.status.condition(ConditionType.SUCCEEDED) if job.status else None
    if summary is not None and summary.status == ConditionStatus.FALSE:
        raise JobFailedError(job.name, summary.reason, summary.message, job)
    return job
