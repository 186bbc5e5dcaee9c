"""Typed configuration of the serving application (the `args` of `build_app`).

The same dict is what a RayService's `serveConfigV2` passes as `applications[].args`
and what `serve run tuneforge_serving.app:build_app --args ...` reads. Field names are
snake_case; camelCase aliases are accepted so YAML in the chart can use either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from tuneforge.contract import DEFAULT_SLOT_RANK
from tuneforge_serving.mixed.config import MixedBatchingConfig


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class LimitsConfig(_Model):
    """Per-request limits; a request beyond any of them is answered 422."""

    max_width: int = Field(default=768, ge=8)
    """Largest image width in pixels (must be a multiple of 8)."""
    max_height: int = Field(default=768, ge=8)
    """Largest image height in pixels (must be a multiple of 8)."""
    max_steps: int = Field(default=50, ge=1)
    """Most denoising steps per request."""
    max_num_images: int = Field(default=4, ge=1)
    """Most images per request."""
    max_prompt_tokens: int = Field(default=77, ge=2)
    """Most CLIP tokens in a prompt (incl. begin/end tokens, after textual-inversion expansion)."""
    max_adapters_per_request: int | None = Field(default=None, ge=0)
    """Most adapters in one request; default (None) the adapter LRU size."""


ALL_LAYERS = "all"
"""A target list of just this: every Linear and Conv2d of the component carries slots."""


class RankBucket(_Model):
    """Slots of one rank; an adapter goes to the smallest bucket of at least its rank."""

    rank: int = Field(ge=1)
    """Slot rank: adapters of rank <= this are zero-padded into these slots (exact)."""
    slots: int | None = Field(default=None, ge=0)
    """Slots of this rank; None: derived from adapterLruSize and the memory budget."""


class HotswapConfig(_Model):
    """The pre-allocated slots adapters are copied into: the compatibility contract."""

    rank_buckets: list[RankBucket] = Field(
        default_factory=lambda: [RankBucket(rank=DEFAULT_SLOT_RANK), RankBucket(rank=64)]
    )
    """Slot ranks (`[16, 64]` or `[{rank: 16, slots: 3}, {rank: 64, slots: 1}]`)."""
    memory_budget_mb: float | None = Field(default=1024.0, gt=0, alias="memoryBudgetMB")
    """Most memory all LoRA slots may take on the replica's device (None: no limit)."""
    max_lora_rank: int | None = Field(default=None, ge=1)
    """Shorthand for one bucket of this rank (`rankBuckets: [maxLoraRank]`)."""
    unet_target_modules: list[str] = Field(default_factory=lambda: [ALL_LAYERS])
    """UNet modules with LoRA slots: `all` (every Linear and Conv2d) or name suffixes."""
    text_encoder_target_modules: list[str] = Field(default_factory=lambda: [ALL_LAYERS])
    """Text-encoder modules with LoRA slots: `all`, name suffixes, or empty (refused)."""
    max_ti_vectors: int = Field(default=8, ge=1)
    """Most textual-inversion vectors one adapter may bring (over all its tokens)."""

    @field_validator("rank_buckets", mode="before")
    @classmethod
    def _plain_ranks(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"rank": item} if isinstance(item, int) else item for item in value]
        return value

    @model_validator(mode="after")
    def _one_bucket_per_rank(self) -> HotswapConfig:
        ranks = [bucket.rank for bucket in self.rank_buckets]
        if not ranks or len(set(ranks)) != len(ranks):
            raise ValueError("hotswap.rankBuckets: give each slot rank once (and at least one)")
        return self

    def buckets(self) -> list[tuple[int, int | None]]:
        """`(rank, explicit slots or None)` per bucket; `max_lora_rank` alone is one bucket."""
        if self.max_lora_rank is not None and "rank_buckets" not in self.model_fields_set:
            return [(self.max_lora_rank, None)]
        return [(bucket.rank, bucket.slots) for bucket in self.rank_buckets]

    @property
    def largest_rank(self) -> int:
        """The largest slot rank configured (the budget may leave less)."""
        return max(rank for rank, _ in self.buckets())


class AutoscalingConfig(_Model):
    """Ray Serve autoscaling for the model deployment (used when `enabled`)."""

    enabled: bool = False
    """Autoscale between min and max replicas instead of a fixed `num_replicas`."""
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    """Requests per replica Serve aims for."""
    upscale_delay_s: float = Field(default=10.0, ge=0)
    downscale_delay_s: float = Field(default=300.0, ge=0)

    def to_serve(self) -> dict[str, Any]:
        """The dict Ray Serve's `autoscaling_config` takes."""
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }


class BatchConfig(_Model):
    """Batching while mixed batching is off: requests with the same adapters, weights and
    shape run together, one pipeline call per batch."""

    max_batch_size: int = Field(default=4, ge=1)
    batch_wait_timeout_s: float = Field(default=0.0, ge=0)
    """How long a lone request waits for company; 0 batches only what is already queued."""


def _read_token(token_file: Path | None, token_env: str | None, where: str) -> str | None:
    if token_file is not None:
        token = token_file.read_text().strip()
        if not token:
            raise ValueError(f"{where}.tokenFile {token_file} is empty; write the token")
        return token
    return (os.environ.get(token_env) if token_env else None) or None


class CallerConfig(_Model):
    """One API caller (a team): its own token, and the adapters it may use and list.

    An adapter is a registered-model name; the caller may use it when the name starts with
    one of `adapter_prefixes` or is in `adapters`. Others answer 403 and are not listed.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Who the caller is (in 403 messages and logs), e.g. the team's namespace."""
    token_env: str | None = None
    """Environment variable holding this caller's token."""
    token_file: Path | None = None
    """File holding this caller's token; wins over `token_env`."""
    adapter_prefixes: list[str] = Field(default_factory=list)
    """Adapter-name prefixes the caller may use and list, e.g. `team-a.`."""
    adapters: list[str] = Field(default_factory=list)
    """Adapter names the caller may use and list besides the prefixes."""

    @model_validator(mode="after")
    def _token_source_and_scope(self) -> CallerConfig:
        if self.token_env is None and self.token_file is None:
            raise ValueError(f"auth.callers[{self.name}]: set tokenEnv or tokenFile")
        if any(not prefix for prefix in self.adapter_prefixes):
            raise ValueError(
                f"auth.callers[{self.name}].adapterPrefixes: an empty prefix would allow every "
                "adapter; write e.g. 'team-a.'"
            )
        return self

    def allows(self, adapter: str) -> bool:
        """True when this caller may use and list adapter `adapter`."""
        return adapter in self.adapters or any(adapter.startswith(p) for p in self.adapter_prefixes)

    def scope_text(self) -> str:
        """The caller's scope, as the 403 states it."""
        parts = [f"names starting {p!r}" for p in self.adapter_prefixes] + self.adapters
        return ", ".join(parts) or "no adapters"

    def load_token(self) -> str:
        """This caller's token; ValueError naming the caller when it is not set."""
        where = f"auth.callers[{self.name}]"
        token = _read_token(self.token_file, self.token_env, where)
        if not token:
            raise ValueError(f"{where}: no token: set {self.token_env or 'its tokenFile'}")
        return token


class AuthConfig(_Model):
    """Bearer-token auth of the API, on by default and failing closed.

    Every route but `/healthz` and `/readyz` (`/metrics`, `/docs` and `/openapi.json`
    included) needs `Authorization: Bearer <token>`. The main token (`token_env` /
    `token_file`) may use and list every adapter; each of `callers` has its own token and
    adapter scope. Without any token the app refuses to start, unless `enabled` is
    explicitly false.
    """

    enabled: bool = True
    """False serves every route to anyone: only for a server nobody else can reach."""
    token_env: str | None = "TUNEFORGE_SERVING_TOKEN"
    """Environment variable holding the main token (e.g. from a Kubernetes Secret)."""
    token_file: Path | None = None
    """File holding the main token (a mounted Secret); wins over `token_env`."""
    callers: list[CallerConfig] = Field(default_factory=list)
    """Callers with their own token, limited to their adapters (one per team)."""

    @field_validator("callers")
    @classmethod
    def _unique_callers(cls, value: list[CallerConfig]) -> list[CallerConfig]:
        names = [caller.name for caller in value]
        if len(set(names)) != len(names):
            raise ValueError("auth.callers: each caller name may appear once")
        return value

    def load_token(self) -> str | None:
        """The main token, after checking every caller's token.

        None when auth is disabled, or when only `callers` have tokens. ValueError when auth
        is on and no token is configured, or when two callers share a token.
        """
        if not self.enabled:
            return None
        token = _read_token(self.token_file, self.token_env, "auth")
        callers = [caller.load_token() for caller in self.callers]
        if len(set(callers + ([token] if token else []))) != len(callers) + bool(token):
            raise ValueError("auth: two callers (or a caller and the main token) share a token")
        if not token and not callers:
            source = f"set {self.token_env} or " if self.token_env else ""
            raise ValueError(
                "serving auth is on and no token is configured: "
                f"{source}set auth.tokenFile (or auth.callers); to serve without auth, set "
                "auth.enabled: false"
            )
        return token

    def load_callers(self) -> list[tuple[CallerConfig, str]]:
        """Each caller with its token (none when auth is disabled)."""
        if not self.enabled:
            return []
        return [(caller, caller.load_token()) for caller in self.callers]


class ServingConfig(_Model):
    """Everything the serving application needs; validated once in `build_app`."""

    base_model: str
    """Base model: a diffusers folder or one `.safetensors` checkpoint, local, `s3://` (downloaded once) or `hf://org/name[/file.safetensors]`."""
    base_model_revision: str | None = None
    """Hub revision (branch, tag or commit) of an `hf://` base (or `@rev` in the URI)."""
    base_model_variant: Literal["fp16"] | None = None
    """`fp16` fetches a diffusers folder's `*.fp16.safetensors` files."""
    model_name: str = "sd15"
    """Name of the model deployment (one per base model)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` picks CUDA when a GPU is visible."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """`auto`: float16 on CUDA, float32 on CPU."""
    adapter_lru_size: int = Field(default=3, ge=1)
    """Adapters attached to the pipeline at once: LoRA/TI slots over all rank buckets (the
    memory budget may leave fewer; the engine's `slot_count` is what the replica keeps)."""
    host_cache_size: int = Field(default=32, ge=1)
    """Adapters kept staged in host memory (safetensors parsed, ready to copy)."""
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".tuneforge" / "serving-cache")
    """Disk cache for fetched adapters and downloaded base models."""
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    hotswap: HotswapConfig = Field(default_factory=HotswapConfig)
    batching: BatchConfig = Field(default_factory=BatchConfig)
    mixed_batching: MixedBatchingConfig = Field(default_factory=MixedBatchingConfig)
    """Mixed-adapter batches (docs/serving-mixed-batching.md); when enabled, replaces `batching`."""
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    num_replicas: int = Field(default=1, ge=1)
    """Fixed replica count of the model deployment when autoscaling is off."""
    max_concurrent_requests: int = Field(default=8, ge=1)
    """Requests one model replica works on at once (Serve's `max_ongoing_requests`)."""
    max_queued_requests: int = Field(default=32, ge=0)
    """Requests waiting at the ingress beyond the concurrent ones; more are answered 429."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    """A request still running after this is answered 504."""
    resolve_cache_ttl_s: float = Field(default=5.0, ge=0)
    """How long a resolved `name@alias` is reused before asking the registry again."""
    num_gpus: float | None = None
    """GPUs per model replica; None: 1 when `device` is cuda, else 0."""
    num_cpus: float = Field(default=1.0, ge=0)
    """CPUs per model replica."""
    metrics_prefix: str = "tuneforge_serving"

    @field_validator("base_model")
    @classmethod
    def _base_model_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "base_model is empty: give a local path, s3://bucket/prefix or hf://org/name"
            )
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> ServingConfig:
        for name in ("max_width", "max_height"):
            if getattr(self.limits, name) % 8:
                raise ValueError(f"limits.{name} must be a multiple of 8")
        requested = self.limits.max_adapters_per_request
        if requested is not None and requested > self.adapter_lru_size:
            raise ValueError(
                "limits.max_adapters_per_request exceeds adapter_lru_size: a request's adapters "
                "must all fit in the pipeline at once; raise adapter_lru_size or lower the limit"
            )
        buckets = self.hotswap.buckets()
        explicit = sum(slots for _, slots in buckets if slots is not None)
        derived = any(slots is None for _, slots in buckets)
        if explicit > self.adapter_lru_size or (not derived and explicit != self.adapter_lru_size):
            raise ValueError(
                f"hotswap.rankBuckets: the buckets' slots ({explicit}) must add up to "
                f"adapterLruSize ({self.adapter_lru_size})"
            )
        if (
            self.autoscaling.enabled
            and self.autoscaling.min_replicas > self.autoscaling.max_replicas
        ):
            raise ValueError("autoscaling.min_replicas must be <= autoscaling.max_replicas")
        return self

    @property
    def max_adapters_per_request(self) -> int:
        """Adapters one request may use: the limit, and never more than the LRU holds."""
        return self.limits.max_adapters_per_request or self.adapter_lru_size

    def replica_gpus(self, cuda_visible: bool) -> float:
        """GPUs to request per model replica."""
        if self.num_gpus is not None:
            return self.num_gpus
        return 1.0 if self.device == "cuda" or (self.device == "auto" and cuda_visible) else 0.0
