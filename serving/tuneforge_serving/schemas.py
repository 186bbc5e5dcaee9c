"""The HTTP API's request and response bodies (camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from tuneforge.contract import AdapterRef


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class RequestedAdapter(_Wire):
    """One adapter in a request: `name` plus at most one of `version` / `alias`."""

    name: str = Field(min_length=1, max_length=256)
    """Registered model name; alone it means the latest version."""
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, min_length=1, max_length=256)
    weight: float = Field(default=1.0, ge=-4.0, le=4.0)
    """LoRA scale for this request (textual inversion ignores it)."""

    @model_validator(mode="after")
    def _one_selector(self) -> RequestedAdapter:
        if self.version is not None and self.alias is not None:
            raise ValueError(f"adapter {self.name!r}: give either version or alias, not both")
        self.reference()  # refuses what no registry reference can name
        return self

    def reference(self) -> AdapterRef:
        """The registry reference: `name/3`, `name@alias` or `name`."""
        return AdapterRef(self.name, self.version, self.alias)


class GenerateRequest(_Wire):
    """`POST /v1/generate`. Sizes, steps and counts are checked against the configured limits."""

    prompt: str = Field(min_length=1, max_length=4096)
    negative_prompt: str | None = Field(default=None, max_length=4096)
    adapters: list[RequestedAdapter] = Field(default_factory=list)
    steps: int = Field(default=25, ge=1)
    guidance_scale: float = Field(default=7.5, ge=0.0, le=30.0)
    width: int = Field(default=512, ge=8)
    height: int = Field(default=512, ge=8)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    """Seed of the first image (image i uses seed + i); random when omitted."""
    num_images: int = Field(default=1, ge=1)
    model: str | None = None
    """Model deployment name; the first configured one when omitted."""


class ResolvedAdapterInfo(_Wire):
    """An adapter of a request as the server used it."""

    name: str
    version: int
    weight: float
    method: str | None = None
    tokens: list[str] = Field(default_factory=list)


class Timings(_Wire):
    """Where a request's time went, in milliseconds."""

    resolve_ms: float = 0.0
    queue_ms: float = 0.0
    stage_ms: float = 0.0
    """Fetching/parsing adapters not yet in host memory."""
    swap_ms: float = 0.0
    """Copying adapters into pipeline slots."""
    inference_ms: float = 0.0
    total_ms: float = 0.0


class GenerateResponse(_Wire):
    """JSON answer of `POST /v1/generate` (ask `Accept: image/png` for raw PNG instead)."""

    images: list[str]
    """Base64-encoded PNGs."""
    seed: int
    model: str
    adapters: list[ResolvedAdapterInfo]
    width: int
    height: int
    steps: int
    guidance_scale: float
    timings: Timings


class AdapterSummary(_Wire):
    """One entry of `GET /v1/adapters`."""

    name: str
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)
    loaded_versions: list[int] = Field(default_factory=list)
    """Versions attached to a pipeline slot on the replica that answered."""


class AdapterList(_Wire):
    adapters: list[AdapterSummary]


class LoadResponse(_Wire):
    """Answer of `POST /v1/adapters/{name}/load`."""

    name: str
    version: int
    attached: bool
    stage_ms: float
    swap_ms: float


class ErrorBody(_Wire):
    detail: str
