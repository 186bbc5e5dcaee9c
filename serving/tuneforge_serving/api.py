"""The HTTP API (FastAPI): validation, auth, admission control, responses, metrics.

`create_api(service)` builds the FastAPI app around an `ApiService`; the Serve ingress
deployment returns it from `__serve_build_asgi_app__`, and tests run it in-process with a
`LocalBackend`. Limits beyond the config answer 422, unknown adapters 404, overload 429
(this ingress) or 503 (model queue full), timeouts 504. Each caller's token maps to the
adapters it may use and list (`callers.py`): others answer 403.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tuneforge.contract import AdapterRef
from tuneforge_serving.backends import ModelBackend
from tuneforge_serving.callers import EVERYONE, Authenticator, Caller
from tuneforge_serving.config import ServingConfig
from tuneforge_serving.errors import (
    LimitExceeded,
    Overloaded,
    ServingError,
    Unavailable,
    hide_cause,
)
from tuneforge_serving.jobs import GenerationJob, GenerationOutput
from tuneforge_serving.metrics import ApiMetrics
from tuneforge_serving.resolver import AdapterResolver
from tuneforge_serving.schemas import (
    AdapterList,
    AdapterSummary,
    GenerateRequest,
    GenerateResponse,
    LoadResponse,
    ResolvedAdapterInfo,
    Timings,
)


class ApiService:
    """The API's logic, independent of FastAPI and of Ray."""

    def __init__(
        self,
        config: ServingConfig,
        backends: dict[str, ModelBackend],
        registry: Any,
        token: str | None = None,
    ) -> None:
        if not backends:
            raise ValueError("ApiService needs at least one model backend")
        self.config = config
        self.backends = backends
        self.default_model = next(iter(backends))
        self.registry = registry
        self.resolver = AdapterResolver(registry, config.resolve_cache_ttl_s)
        self.auth = Authenticator(token, config.auth.load_callers())
        self.metrics = ApiMetrics(config.metrics_prefix)
        replicas = (
            config.autoscaling.max_replicas if config.autoscaling.enabled else config.num_replicas
        )
        self.admission_limit = (
            config.max_concurrent_requests * replicas * len(backends) + config.max_queued_requests
        )
        self._inflight = 0

    # ------------------------------------------------------------------ checks

    def check_limits(self, body: GenerateRequest) -> None:
        """422 (LimitExceeded) naming the field and the configured limit."""
        limits = self.config.limits
        for field, value, limit in (
            ("width", body.width, limits.max_width),
            ("height", body.height, limits.max_height),
            ("steps", body.steps, limits.max_steps),
            ("numImages", body.num_images, limits.max_num_images),
            ("adapters", len(body.adapters), self.config.max_adapters_per_request),
        ):
            if value > limit:
                raise LimitExceeded(f"{field}={value} exceeds this server's limit of {limit}")
        for field, value in (("width", body.width), ("height", body.height)):
            if value % 8:
                raise LimitExceeded(f"{field}={value} must be a multiple of 8")
        names = [ref.name for ref in body.adapters]
        if len(set(names)) != len(names):
            raise LimitExceeded("adapters: each adapter name may appear once per request")

    def check_token(self, credentials: HTTPAuthorizationCredentials | None) -> Caller:
        """The caller holding the bearer token; 401 when nobody does (no token configured:
        auth explicitly disabled, everyone may call)."""
        return self.auth.authenticate(credentials.credentials if credentials else None)

    def backend(self, model: str | None) -> ModelBackend:
        """The backend for `model` (404 for an unknown model name)."""
        name = model or self.default_model
        if name not in self.backends:
            raise _UnknownModel(
                f"model {name!r} is not served here; models: {sorted(self.backends)}"
            )
        return self.backends[name]

    # ------------------------------------------------------------------ operations

    async def generate(
        self, body: GenerateRequest, caller: Caller = EVERYONE
    ) -> tuple[GenerateResponse, list[bytes]]:
        """Validate, resolve, admit and run one request."""
        start = time.perf_counter()
        self.check_limits(body)
        caller.check(ref.name for ref in body.adapters)
        backend = self.backend(body.model)
        if self._inflight >= self.admission_limit:
            self.metrics.rejected.labels("overloaded").inc()
            raise Overloaded(
                f"{self._inflight} requests in flight (limit {self.admission_limit}); retry later"
            )
        self._inflight += 1
        self.metrics.inflight.inc()
        try:
            resolved = await asyncio.gather(
                *(self.resolver.resolve(ref.reference()) for ref in body.adapters)
            )
            resolved_at = time.perf_counter()
            job = GenerationJob(
                prompt=body.prompt,
                negative_prompt=body.negative_prompt,
                adapters=[(r, ref.weight) for r, ref in zip(resolved, body.adapters, strict=True)],
                steps=body.steps,
                guidance_scale=body.guidance_scale,
                width=body.width,
                height=body.height,
                seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
                num_images=body.num_images,
            )
            output: GenerationOutput = await backend.generate(job, self.config.request_timeout_s)
        finally:
            self._inflight -= 1
            self.metrics.inflight.dec()
        if output.error is not None:
            raise output.error.to_exception()
        self.metrics.observe_timings(output.timings, len(output.images))
        timings = Timings(
            resolve_ms=(resolved_at - start) * 1e3,
            total_ms=(time.perf_counter() - start) * 1e3,
            **output.timings,
        )
        response = GenerateResponse(
            images=[base64.b64encode(image).decode() for image in output.images],
            seed=output.seed,
            model=body.model or self.default_model,
            adapters=[ResolvedAdapterInfo(**info) for info in output.adapters],
            width=body.width,
            height=body.height,
            steps=body.steps,
            guidance_scale=body.guidance_scale,
            timings=timings,
        )
        return response, output.images

    async def list_adapters(self, model: str | None, caller: Caller = EVERYONE) -> AdapterList:
        """The caller's registered adapters, with the versions attached on this replica."""
        try:
            entries = await asyncio.to_thread(self.registry.list_adapters)
        except Exception as error:  # noqa: BLE001 - registry down: 503, its address logged only
            unavailable = Unavailable("the adapter registry did not answer; retry later")
            raise hide_cause(unavailable, error) from error
        attached = await self.backend(model).attached()
        loaded: dict[str, list[int]] = {}
        for ref in attached:
            if ref.version is not None:
                loaded.setdefault(ref.name, []).append(ref.version)
        summaries = []
        for entry in entries:
            name = entry if isinstance(entry, str) else entry.name
            if not caller.allows(name):
                continue
            aliases = getattr(entry, "aliases", {}) or {}
            summaries.append(
                AdapterSummary(
                    name=name,
                    latest_version=getattr(entry, "latest_version", None),
                    aliases={a: int(v) for a, v in aliases.items()}
                    if isinstance(aliases, dict)
                    else {},
                    loaded_versions=sorted(loaded.get(name, [])),
                )
            )
        return AdapterList(adapters=summaries)

    async def load(
        self,
        name: str,
        version: int | None,
        alias: str | None,
        model: str | None,
        caller: Caller = EVERYONE,
    ) -> LoadResponse:
        """Stage and attach an adapter ahead of traffic."""
        caller.check([name])
        if version is not None and alias is not None:
            raise LimitExceeded("give either version or alias, not both")
        try:
            reference = AdapterRef(name, version, alias)
        except ValueError as error:
            raise LimitExceeded(str(error)) from error
        resolved = await self.resolver.resolve(reference)
        timings = await self.backend(model).prewarm(resolved)
        return LoadResponse(
            name=resolved.name,
            version=int(resolved.version),
            attached=True,
            stage_ms=timings["stage_ms"],
            swap_ms=timings["swap_ms"],
        )

    async def ready(self) -> bool:
        """Every model backend answers."""
        answers = await asyncio.gather(*(b.ready() for b in self.backends.values()))
        return all(answers)


class _UnknownModel(ServingError):
    status = 404


def _route(path: str) -> str:
    """A low-cardinality route label: `generate`, `adapters`, or `other`."""
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "v1" else "other"


def create_api(service: ApiService) -> FastAPI:
    """The FastAPI app (OpenAPI docs at /docs, schema at /openapi.json, both behind auth)."""
    app = FastAPI(
        title="TuneForge serving",
        version="v1",
        description="Stable Diffusion 1.5 with hot-swapped LoRA and textual-inversion adapters.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    bearer = HTTPBearer(auto_error=False)

    def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        return service.check_token(credentials)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authorized)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(authorized)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, error: ServingError) -> JSONResponse:
        headers = {}
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(error, Overloaded | Unavailable):
            headers["Retry-After"] = "1"
        service.metrics.requests.labels(_route(request.url.path), str(error.status)).inc()
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=headers)

    @app.post(
        "/v1/generate",
        response_model=GenerateResponse,
        responses={
            200: {"content": {"image/png": {}}},
            403: {},
            404: {},
            422: {},
            429: {},
            503: {},
            504: {},
        },
    )
    async def generate(
        body: GenerateRequest, request: Request, caller: Caller = Depends(authorized)
    ) -> Response:
        """Generate images; `Accept: image/png` returns the PNG itself (one image only)."""
        wants_png = "image/png" in request.headers.get("accept", "")
        if wants_png and body.num_images != 1:
            raise LimitExceeded("Accept: image/png returns one image; ask JSON for numImages > 1")
        with service.metrics.latency.labels("generate").time():
            payload, images = await service.generate(body, caller)
        service.metrics.requests.labels("generate", "200").inc()
        if wants_png:
            used = ",".join(str(AdapterRef(a.name, a.version)) for a in payload.adapters)
            headers = {"X-Seed": str(payload.seed), "X-Adapters": used}
            return Response(images[0], media_type="image/png", headers=headers)
        return JSONResponse(payload.model_dump(by_alias=True))

    @app.get("/v1/adapters", response_model=AdapterList)
    async def adapters(
        model: str | None = None, caller: Caller = Depends(authorized)
    ) -> AdapterList:
        """The caller's registered adapters and which versions this replica holds in its slots."""
        return await service.list_adapters(model, caller)

    @app.post("/v1/adapters/{name}/load", response_model=LoadResponse)
    async def load(
        name: str,
        version: int | None = None,
        alias: str | None = None,
        model: str | None = None,
        caller: Caller = Depends(authorized),
    ) -> LoadResponse:
        """Prewarm: fetch, stage and attach an adapter on one model replica."""
        return await service.load(name, version, alias, model, caller)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the ingress answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: every model deployment has its pipeline loaded."""
        ready = await service.ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", dependencies=[Depends(authorized)])
    async def metrics() -> Response:
        """Prometheus metrics of this ingress replica."""
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    return app
