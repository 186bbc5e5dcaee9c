"""What crosses from the API to a model replica: jobs and outputs (no torch needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuneforge_serving.errors import ErrorInfo


@dataclass
class GenerationJob:
    """One validated request with its adapters already resolved to versions."""

    prompt: str
    adapters: list[tuple[Any, float]] = field(default_factory=list)
    """(registry ResolvedAdapter, weight) pairs."""
    negative_prompt: str | None = None
    steps: int = 25
    guidance_scale: float = 7.5
    width: int = 512
    height: int = 512
    seed: int = 0
    num_images: int = 1

    def adapter_set_id(self) -> str:
        """The multiplexing key: the sorted adapter versions (weights do not matter)."""
        keys = sorted(f"{r.name}/{int(r.version)}" for r, _ in self.adapters)
        return ",".join(keys) if keys else "base"

    def shape_key(self) -> tuple[Any, ...]:
        """Jobs with equal shape keys can share one pipeline call."""
        weights = tuple(sorted((f"{r.name}/{int(r.version)}", w) for r, w in self.adapters))
        return (weights, self.steps, self.guidance_scale, self.width, self.height)


@dataclass
class GenerationOutput:
    """PNG images plus what was used, or an error (never raised across Ray)."""

    images: list[bytes] = field(default_factory=list)
    seed: int = 0
    adapters: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: ErrorInfo | None = None
