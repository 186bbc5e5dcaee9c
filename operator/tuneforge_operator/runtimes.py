"""Look up training runtimes and the tenancy policy in the `tuneforge-runtimes` ConfigMap.

One GET (cached briefly) gives both: a data key per runtime and the policy under
`tenancy.yaml`. A job sees only the runtimes its namespace may use, resolved for its namespace
(the team's own Secrets, ServiceAccount, experiment and checkpoint location, and the
`JobScope` the trainer checks again).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tuneforge.api import FineTuneJobSpec, Reason
from tuneforge.api.runtime import TENANCY_KEY, TrainingRuntime, parse_runtimes
from tuneforge.api.status_rules import Blocker
from tuneforge.tenancy import JOB_SCOPE_ENV, JobScope, Tenancy, job_refusals, parse_tenancy
from tuneforge_operator.kubeapi import KubeApi, configmap_path


@dataclass(frozen=True)
class PlatformConfig:
    """What the ConfigMap holds: runtimes (or their errors) and the tenancy policy."""

    runtimes: dict[str, TrainingRuntime | str]
    tenancy: Tenancy | None
    tenancy_error: str | None = None

    def scope(self, namespace: str) -> JobScope:
        """The scope a job of `namespace` runs under (tenancy off without a policy)."""
        return self.tenancy.scope(namespace) if self.tenancy else JobScope(namespace=namespace)

    def usable(self, namespace: str) -> list[str]:
        """Names of the valid runtimes `namespace` may use, sorted."""
        return sorted(
            name
            for name, runtime in self.runtimes.items()
            if isinstance(runtime, TrainingRuntime) and runtime.allows(namespace)
        )


def _parse(data: dict[str, str]) -> PlatformConfig:
    try:
        tenancy, error = parse_tenancy(data.get(TENANCY_KEY)), None
    except ValueError as problem:
        tenancy, error = None, str(problem)
    return PlatformConfig(parse_runtimes(data), tenancy, error)


def resolve_for(runtime: TrainingRuntime, scope: JobScope) -> TrainingRuntime:
    """`runtime` as a job of `scope.namespace` gets it: with a tenancy policy the team's
    credentials and identity replace the runtime's, and its experiment, checkpoints and scope
    (which the trainer checks again) go into the env. Without one the runtime is unchanged."""
    tenant = scope.tenant
    if tenant is None:
        return runtime
    env = {**runtime.env, JOB_SCOPE_ENV: scope.model_dump_json(by_alias=True, exclude_none=True)}
    env["TUNEFORGE_MLFLOW_EXPERIMENT"] = tenant.experiment(scope.namespace)
    if tenant.checkpoint_uri:
        env["TUNEFORGE_CHECKPOINT_URI"] = tenant.checkpoint_uri
    update = {
        "env": env,
        "s3_secret_ref": tenant.s3_secret_ref or runtime.s3_secret_ref,
        "mlflow_secret_ref": tenant.mlflow_secret_ref or runtime.mlflow_secret_ref,
        "service_account_name": tenant.service_account_name or runtime.service_account_name,
    }
    return runtime.model_copy(update=update)


class RuntimeCatalog:
    """Reads one ConfigMap; a missing, invalid or forbidden runtime becomes a `Blocker`."""

    def __init__(self, api: KubeApi, namespace: str, name: str, cache_seconds: float) -> None:
        self._api, self._namespace, self._name = api, namespace, name
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, PlatformConfig | None] | None = None
        self._reading: asyncio.Future[PlatformConfig | None] | None = None

    @property
    def where(self) -> str:
        """`ConfigMap <namespace>/<name>`, for messages."""
        return f"ConfigMap {self._namespace}/{self._name}"

    async def config(self) -> PlatformConfig | None:
        """The ConfigMap's runtimes and policy (None when the ConfigMap does not exist)."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self._cache_seconds:
            return self._cached[1]
        # Callers that arrive while a read is in flight share it (a burst of new jobs costs
        # one GET, even with caching off); such an answer is at most one round trip old.
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(now))
            self._reading.add_done_callback(self._read_done)
        return await asyncio.shield(self._reading)

    def _read_done(self, _: asyncio.Future[PlatformConfig | None]) -> None:
        self._reading = None

    async def _read(self, started: float) -> PlatformConfig | None:
        configmap = await self._api.get(configmap_path(self._namespace, self._name))
        parsed = None if configmap is None else _parse(dict(configmap.get("data") or {}))
        self._cached = (started, parsed)
        return parsed

    async def refusals(self, spec: FineTuneJobSpec, namespace: str) -> list[str]:
        """Why the tenancy rules refuse this job in `namespace` (empty: admitted)."""
        config = await self.config()
        if config is None:
            return job_refusals(spec, JobScope(namespace=namespace))
        if config.tenancy_error is not None:
            return [f"{self.where}: {config.tenancy_error}; the platform team must fix it"]
        runtime = config.runtimes.get(spec.runtime)
        allowed = runtime.allowed_namespaces if isinstance(runtime, TrainingRuntime) else None
        return job_refusals(spec, config.scope(namespace), runtime_namespaces=allowed)

    async def get(self, name: str, namespace: str) -> TrainingRuntime | Blocker:
        """The runtime called `name` as `namespace` gets it, or why it cannot be used."""
        config = await self.config()
        if config is None:
            return Blocker(
                Reason.RUNTIME_NOT_FOUND,
                f"{self.where} does not exist: install the chart's runtimes (values `runtimes`) "
                f"to define runtime {name!r}",
            )
        if config.tenancy_error is not None:
            return Blocker(Reason.RUNTIME_INVALID, f"{self.where}: {config.tenancy_error}")
        runtime = config.runtimes.get(name)
        usable = ", ".join(config.usable(namespace)) or "none"
        if isinstance(runtime, TrainingRuntime) and not runtime.allows(namespace):
            return Blocker(
                Reason.RUNTIME_NOT_FOUND,
                f"Runtime {name!r} is not allowed in namespace {namespace} (tenancy rule: the "
                f"runtime's allowedNamespaces); runtimes this namespace may use: {usable}",
            )
        if runtime is None:
            return Blocker(
                Reason.RUNTIME_NOT_FOUND,
                f"Runtime {name!r} is not defined in {self.where} (runtimes namespace "
                f"{namespace} may use: {usable}); set spec.runtime to one of them or ask the "
                "platform team to add it",
            )
        if isinstance(runtime, str):
            return Blocker(Reason.RUNTIME_INVALID, runtime)
        return resolve_for(runtime, config.scope(namespace))
