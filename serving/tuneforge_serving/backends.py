"""Where the API sends work: an in-process engine, or the Ray Serve model deployment.

Both answer with data (GenerationOutput with an optional ErrorInfo), never with an
exception from inside the model, so 4xx answers survive the trip through Ray.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from tuneforge.contract import AdapterRef
from tuneforge_serving.errors import ServingError, TimedOut, Unavailable
from tuneforge_serving.jobs import GenerationJob, GenerationOutput, pinned_ref

if TYPE_CHECKING:
    from tuneforge_serving.engine import ServingEngine


class ModelBackend(Protocol):
    """What the API needs from a model (one base model)."""

    async def generate(self, job: GenerationJob, timeout_s: float) -> GenerationOutput: ...

    async def prewarm(self, resolved: Any) -> dict[str, float]: ...

    async def attached(self) -> list[AdapterRef]: ...

    async def ready(self) -> bool: ...


class LocalBackend:
    """The engine in this process (unit tests, single-process serving)."""

    def __init__(self, engine: ServingEngine) -> None:
        self.engine = engine

    async def generate(self, job: GenerationJob, timeout_s: float) -> GenerationOutput:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.engine.generate, job), timeout_s)
        except TimeoutError as error:
            raise TimedOut(f"generation did not finish within {timeout_s:g} s") from error

    async def prewarm(self, resolved: Any) -> dict[str, float]:
        return await asyncio.to_thread(self.engine.prewarm, resolved)

    async def attached(self) -> list[AdapterRef]:
        return self.engine.attached()

    async def ready(self) -> bool:
        return True


class ServeBackend:
    """The model deployment behind a Ray Serve handle, routed by adapter set (multiplexing)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def _call(
        self, method: str, *args: Any, timeout_s: float, model_id: str | None = None
    ) -> Any:
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        options: dict[str, Any] = {"method_name": method}
        if model_id is not None:
            options["multiplexed_model_id"] = model_id
        response = self.handle.options(**options).remote(*args)
        try:
            return await asyncio.wait_for(response, timeout_s)
        except TimeoutError as error:
            response.cancel()
            raise TimedOut(f"{method} did not finish within {timeout_s:g} s") from error
        except BackPressureError as error:
            raise Unavailable(
                f"model replicas are at their queue limit; retry later ({error})"
            ) from error
        except DeploymentUnavailableError as error:
            raise Unavailable(f"model deployment unavailable: {error}") from error
        except ServingError:
            raise

    async def generate(self, job: GenerationJob, timeout_s: float) -> GenerationOutput:
        output: GenerationOutput = await self._call(
            "generate", job, timeout_s=timeout_s, model_id=job.adapter_set_id()
        )
        return output

    async def prewarm(self, resolved: Any) -> dict[str, float]:
        result: dict[str, Any] = await self._call(
            "prewarm", resolved, timeout_s=600, model_id=str(pinned_ref(resolved))
        )
        if result.get("error") is not None:
            raise result["error"].to_exception()
        timings: dict[str, float] = result["timings"]
        return timings

    async def attached(self) -> list[AdapterRef]:
        result: list[AdapterRef] = await self._call("attached", timeout_s=30)
        return result

    async def ready(self) -> bool:
        try:
            return bool(await self._call("ready", timeout_s=5))
        except ServingError:
            return False
