"""The ServingEngine internals the mixed runner uses, gathered in one place.

The engine (tuneforge_serving.engine, owned by the serving component) keeps its slot
lock, slot attachment and prompt check private. Until it offers them publicly
(`engine.slot_lock`, `engine.attach(staged)`, `engine.check_prompt(prompt)`,
`lora_slots.scale(index, key)`), this shim is the only place that reaches in, so a
rename there breaks one small file here, loudly (the unit tests cover every accessor).
"""

from __future__ import annotations

import threading
from typing import Any

from tuneforge_serving.adapter_store import StagedAdapter


class EngineAccess:
    """Typed access to one ServingEngine's slots, lock and prompt limits."""

    def __init__(self, engine: Any) -> None:
        for attribute in ("_lock", "_attach", "_check_prompt", "lora_slots", "embedding_slots"):
            if not hasattr(engine, attribute):
                raise TypeError(
                    f"ServingEngine has no {attribute!r}: the mixed batch runner needs the "
                    "engine's slot lock, attach and prompt check (see mixed/engine_access.py)"
                )
        self.engine = engine

    @property
    def lock(self) -> threading.Lock:
        """Held while slots change and while the pipeline runs."""
        lock: threading.Lock = self.engine._lock
        return lock

    def attach(self, adapters: list[StagedAdapter]) -> list[int]:
        """Slot indices of `adapters`, copied in where missing (hold `lock`)."""
        indices: list[int] = self.engine._attach(adapters)
        return indices

    def check_prompt(self, prompt: str) -> None:
        """Raise LimitExceeded when `prompt` (TI tokens expanded) exceeds the token limit."""
        self.engine._check_prompt(prompt)

    def slot_scale(self, index: int, key: tuple[str, str]) -> float | None:
        """alpha / r of the adapter in slot `index` on layer `key`; None where it has none."""
        scale: float | None = self.engine.lora_slots._scales[index].get(key)
        return scale

    def mount_layers_of(self, slots: set[int]) -> None:
        """Put the LoRA layers that any of `slots` covers in the forward path (hold `lock`).

        Activating the slots does that (the engine bypasses layers no active slot covers);
        which slots are "active" does not matter to the per-sample path, which uses the
        names it is given. Layers none of them covers stay plain: every sample's delta is
        zero there anyway.
        """
        self.engine.lora_slots.activate([(index, 1.0) for index in sorted(slots)])

    @property
    def slot_count(self) -> int:
        """Adapters the pipeline holds at once."""
        return int(self.engine.lora_slots.n_slots)
