"""Adapter references -> registry versions, with a short TTL cache for aliases and `latest`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tuneforge.contract import AdapterRef
from tuneforge.errors import AdapterNotFoundError, UnsafeArtifactError
from tuneforge_serving.errors import (
    AdapterRejected,
    AdapterUnknown,
    Unavailable,
    hide_cause,
)

LIST_HINT = "GET /v1/adapters lists the adapters this server can serve"


def not_found_detail(reference: AdapterRef) -> str:
    """The caller's 404 message: what is missing, and where to look (no registry address)."""
    if reference.alias is not None:
        missing = f"no registered model {reference.name!r} with alias {reference.alias!r}"
    elif reference.version is not None:
        missing = f"no registered model {reference.name!r} with version {reference.version}"
    else:
        missing = f"no registered model {reference.name!r} with any version"
    return f"adapter '{reference}' not found: {missing}; {LIST_HINT}"


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
        """Blocking resolve; AdapterUnknown (404) naming the reference when it does not exist.

        The registry's errors name its address and CLI commands: they are logged here, and
        the caller gets a message of its own (errors.hide_cause).
        """
        now = time.monotonic()
        cached = self._cache.get(reference)
        if cached is not None and (reference.pinned or now - cached[0] < self.ttl_s):
            return cached[1]
        try:
            resolved = self.registry.resolve(reference)
        except (AdapterNotFoundError, ValueError) as error:  # ValueError: a name it cannot read
            raise hide_cause(AdapterUnknown(not_found_detail(reference)), error) from error
        except UnsafeArtifactError as error:
            rejected = AdapterRejected(
                f"adapter '{reference}' cannot be served: its files are not safetensors; "
                "ask for another version"
            )
            raise hide_cause(rejected, error) from error
        except Exception as error:  # noqa: BLE001 - registry down: 503, not 500
            raise hide_cause(
                Unavailable(
                    f"the adapter registry did not answer while resolving '{reference}'; "
                    "retry later"
                ),
                error,
            ) from error
        self._cache[reference] = (now, resolved)
        return resolved

    async def resolve(self, reference: AdapterRef) -> Any:
        """`resolve_now` in a worker thread."""
        return await asyncio.to_thread(self.resolve_now, reference)
