"""What crosses from the API to a model replica: jobs and outputs (no torch needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuneforge.contract import AdapterRef
from tuneforge_serving.errors import ErrorInfo


def pinned_ref(resolved: Any) -> AdapterRef:
    """The exact version a registry `ResolvedAdapter` (or anything with name and version) names."""
    return AdapterRef.of(resolved.name, resolved.version)


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

    def adapter_refs(self) -> list[AdapterRef]:
        """The adapters' exact versions, in request order."""
        return [pinned_ref(resolved) for resolved, _ in self.adapters]

    def adapter_set_id(self) -> str:
        """The multiplexing key: the sorted adapter versions (weights do not matter)."""
        keys = sorted(str(ref) for ref in self.adapter_refs())
        return ",".join(keys) if keys else "base"

    def shape_key(self) -> tuple[Any, ...]:
        """What jobs must share to run in one pipeline call, whatever their adapters.

        Size, steps and guidance scale shape the whole call; prompts, seeds, image counts
        and adapters are per sample (the batch key of mixed-adapter batching).
        """
        return (int(self.width), int(self.height), int(self.steps), float(self.guidance_scale))

    def choice_key(self) -> tuple[Any, ...]:
        """The shape plus the adapter choice (versions and weights): the batch key when
        every call runs one shared choice (mixed batching off)."""
        choice = tuple(
            sorted(
                (str(ref), float(w))
                for ref, (_, w) in zip(self.adapter_refs(), self.adapters, strict=True)
            )
        )
        return (*self.shape_key(), choice)


@dataclass
class GenerationOutput:
    """PNG images plus what was used, or an error (never raised across Ray)."""

    images: list[bytes] = field(default_factory=list)
    seed: int = 0
    adapters: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: ErrorInfo | None = None
