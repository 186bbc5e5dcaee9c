"""Per-sample LoRA routing through peft's `adapter_names` path.

peft's LoRA layers compute a different adapter for each sample when their forward gets
`adapter_names=[...]` (one name per sample, `"__base__"` for none), but diffusers does
not pass that argument on. `SampleRouter` installs one forward pre-hook per peft
`LoraLayer` that adds it while a route is set, and does nothing otherwise (so the
engine's single-adapter-set path is untouched).

The names are given once per sample of the prompt batch; a layer that sees a batch `k`
times larger (the UNet under classifier-free guidance sees `[uncond..., cond...]`, the
text encoder sees the prompts and the negative prompts in two calls of `n`) gets the
names repeated `k` times, which is exactly that layout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from peft.tuners.lora import LoraLayer

BASE = "__base__"
"""peft's name for "no adapter" in `adapter_names`."""


def expand_names(names: Sequence[str], batch: int) -> list[str]:
    """`names` (one per sample) repeated to cover a layer batch of `batch` rows.

    Raises ValueError when `batch` is not a whole multiple of the samples: a layer was
    called with a batch the route does not describe, and guessing would mix adapters up.
    """
    count = len(names)
    if count == 0 or batch % count:
        raise ValueError(
            f"a LoRA layer got a batch of {batch} rows for a route of {count} samples; "
            "per-sample routing needs a whole multiple (CFG doubles the UNet batch)"
        )
    return list(names) * (batch // count)


def _as_module(layer: object) -> torch.nn.Module:
    """peft's LoraLayer is a mixin; the concrete layers (Linear, ...) are torch Modules."""
    if not isinstance(layer, torch.nn.Module):
        raise TypeError(f"{type(layer).__name__} is not a torch Module; cannot hook it")
    return layer


class SampleRouter:
    """Forward pre-hooks on the given peft LoRA layers, inactive until `route`.

    Pass the layers themselves (the engine's `lora_slots.layers`), not a model to search:
    the engine may have unmounted wrappers that no active slot covers, and a search of
    the model would miss them.
    """

    def __init__(self, layers: Iterable[LoraLayer]) -> None:
        self._names: tuple[str, ...] | None = None
        self._owner: int | None = None
        self._guard = threading.Lock()
        self.layers: list[LoraLayer] = list(layers)
        modules = [_as_module(layer) for layer in self.layers]
        self._handles = [
            module.register_forward_pre_hook(self._hook, with_kwargs=True) for module in modules
        ]

    @classmethod
    def for_modules(cls, modules: Iterable[torch.nn.Module]) -> SampleRouter:
        """A router on every LoraLayer currently inside `modules`."""
        return cls(
            layer
            for module in modules
            for layer in module.modules()
            if isinstance(layer, LoraLayer)
        )

    def _hook(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        names = self._names
        if names is None or self._owner != threading.get_ident() or not args:
            return None
        kwargs["adapter_names"] = expand_names(names, len(args[0]))
        return args, kwargs

    @contextmanager
    def route(self, names: Sequence[str]) -> Iterator[None]:
        """Within the block, sample `i` of every LoRA layer's batch uses adapter `names[i]`.

        Only forwards on the calling thread are routed; one route at a time.
        """
        if not names:
            raise ValueError("route needs one adapter name per sample, got none")
        with self._guard:
            self._names, self._owner = tuple(names), threading.get_ident()
            try:
                yield
            finally:
                self._names, self._owner = None, None

    def any_merged(self) -> bool:
        """True when some layer has a fused (merged) adapter: per-sample routing then fails."""
        return any(layer.merged for layer in self.layers)

    def remove(self) -> None:
        """Take the hooks off (the router is unusable afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
