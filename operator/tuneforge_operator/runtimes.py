"""Look up training runtimes in the `tuneforge-runtimes` ConfigMap (cached briefly)."""

from __future__ import annotations

import asyncio
import time

from tuneforge.api import Reason
from tuneforge.api.runtime import TrainingRuntime, parse_runtimes
from tuneforge.api.status_rules import Blocker
from tuneforge_operator.kubeapi import KubeApi, configmap_path


class RuntimeCatalog:
    """Reads runtimes from one ConfigMap; a missing or invalid runtime becomes a `Blocker`."""

    def __init__(self, api: KubeApi, namespace: str, name: str, cache_seconds: float) -> None:
        self._api, self._namespace, self._name = api, namespace, name
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, TrainingRuntime | str] | None] | None = None
        self._reading: asyncio.Future[dict[str, TrainingRuntime | str] | None] | None = None

    async def _runtimes(self) -> dict[str, TrainingRuntime | str] | None:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self._cache_seconds:
            return self._cached[1]
        # Callers that arrive while a read is in flight share it (a burst of new jobs costs
        # one GET, even with caching off); such an answer is at most one round trip old.
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(now))
            self._reading.add_done_callback(self._read_done)
        return await asyncio.shield(self._reading)

    def _read_done(self, _: asyncio.Future[dict[str, TrainingRuntime | str] | None]) -> None:
        self._reading = None

    async def _read(self, started: float) -> dict[str, TrainingRuntime | str] | None:
        configmap = await self._api.get(configmap_path(self._namespace, self._name))
        parsed = None if configmap is None else parse_runtimes(dict(configmap.get("data") or {}))
        self._cached = (started, parsed)
        return parsed

    async def get(self, name: str) -> TrainingRuntime | Blocker:
        """The runtime called `name`, or why it cannot be used."""
        runtimes = await self._runtimes()
        where = f"ConfigMap {self._namespace}/{self._name}"
        if runtimes is None:
            return Blocker(
                Reason.RUNTIME_NOT_FOUND,
                f"{where} does not exist: install the chart's runtimes (values `runtimes`) "
                f"to define runtime {name!r}",
            )
        runtime = runtimes.get(name)
        if runtime is None:
            known = ", ".join(sorted(runtimes)) or "none"
            return Blocker(
                Reason.RUNTIME_NOT_FOUND,
                f"Runtime {name!r} is not defined in {where} (defined: {known}); "
                "set spec.runtime to one of them or ask the platform team to add it",
            )
        if isinstance(runtime, str):
            return Blocker(Reason.RUNTIME_INVALID, runtime)
        return runtime
