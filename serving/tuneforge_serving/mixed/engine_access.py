"""The ServingEngine seam the mixed runner uses, gathered in one place.

The engine offers (or is gaining) a public seam for batch formers: `slot_lock`,
`attach(staged)`, `check_prompt(prompt)` and `lora_slots.scale(index, key)`. This shim
uses those names when the engine has them and the older private ones (`_lock`,
`_attach`, `_check_prompt`, `lora_slots._scales`) otherwise, so the runner works across
both; a rename breaks this one small file, loudly (the unit tests cover every accessor).
"""

from __future__ import annotations

import threading
from typing import Any

from tuneforge_serving.adapter_store import StagedAdapter
from tuneforge_serving.errors import LimitExceeded


def _either(owner: Any, public: str, private: str) -> Any:
    """`owner.public` when it exists, else `owner.private`; TypeError naming both if neither."""
    for name in (public, private):
        if hasattr(owner, name):
            return getattr(owner, name)
    raise TypeError(
        f"{type(owner).__name__} has neither {public!r} nor {private!r}: the mixed batch "
        "runner needs the engine's slot seam (see mixed/engine_access.py)"
    )


class EngineAccess:
    """Typed access to one ServingEngine's slots, lock and prompt limits."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._lock: threading.Lock = _either(engine, "slot_lock", "_lock")
        self._attach = _either(engine, "attach", "_attach")
        self._check_prompt = _either(engine, "check_prompt", "_check_prompt")
        slots = engine.lora_slots
        if hasattr(slots, "scale"):
            self._scale = slots.scale
        else:
            scales = _either(slots, "scales", "_scales")
            self._scale = lambda index, key: scales[index].get(key)

    @property
    def lock(self) -> threading.Lock:
        """Held while slots change and while the pipeline runs."""
        return self._lock

    def attach(self, adapters: list[StagedAdapter]) -> list[int]:
        """Slot indices of `adapters`, copied in where missing (hold `lock`)."""
        indices: list[int] = self._attach(adapters)
        return indices

    def check_prompt(self, prompt: str) -> None:
        """Raise LimitExceeded when `prompt` (TI tokens expanded) exceeds the token limit."""
        self._check_prompt(prompt)

    def slot_scale(self, index: int, key: tuple[str, str]) -> float | None:
        """alpha / r of the adapter in slot `index` on layer `key`; None where it has none."""
        scale: float | None = self._scale(index, key)
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


def check_token_clash(staged: list[StagedAdapter]) -> None:
    """422 when two adapters of one request define the same textual-inversion token.

    (Across requests of a batch the same token is fine: each prompt is rewritten with
    its own adapters' slot tokens only.)
    """
    owners: dict[str, str] = {}
    for adapter in staged:
        for token in adapter.embeddings.vectors if adapter.embeddings else {}:
            if token in owners:
                raise LimitExceeded(
                    f"adapters {owners[token]} and {adapter.key} both define the token "
                    f"{token!r}; use one of them per request"
                )
            owners[token] = str(adapter.key)
