"""Adapter references -> registry versions, with a short TTL cache for aliases and `latest`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tuneforge.contract import AdapterRef
from tuneforge.errors import AdapterNotFoundError, UnsafeArtifactError
from tuneforge_serving.errors import AdapterRejected, AdapterUnknown, Unavailable


class AdapterResolver:
    """Resolves `name`, `name/3`, `name@alias` through the registry (blocking calls in threads).

    A pinned version never changes, so it is cached for good; `name@alias` and `name`
    (latest) are cached for `ttl_s` seconds so that moving an alias takes effect quickly
    without one MLflow round trip per request.
    """

    def __init__(self, registry: Any, ttl_s: float) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._cache: dict[AdapterRef, tuple[float, Any]] = {}

    def resolve_now(self, reference: AdapterRef) -> Any:
        """Blocking resolve; AdapterUnknown (404) naming the reference when it does not exist."""
        now = time.monotonic()
        cached = self._cache.get(reference)
        if cached is not None and (reference.pinned or now - cached[0] < self.ttl_s):
            return cached[1]
        try:
            resolved = self.registry.resolve(reference)
        except AdapterNotFoundError as error:
            raise AdapterUnknown(f"adapter '{reference}' not found: {error}") from error
        except UnsafeArtifactError as error:
            raise AdapterRejected(f"adapter '{reference}': {error}") from error
        except ValueError as error:  # a reference the registry cannot read
            raise AdapterUnknown(f"adapter '{reference}': {error}") from error
        except Exception as error:  # noqa: BLE001 - registry down: 503, not 500
            raise Unavailable(
                f"adapter registry unavailable while resolving '{reference}': {error}"
            ) from error
        self._cache[reference] = (now, resolved)
        return resolved

    async def resolve(self, reference: AdapterRef) -> Any:
        """`resolve_now` in a worker thread."""
        return await asyncio.to_thread(self.resolve_now, reference)
