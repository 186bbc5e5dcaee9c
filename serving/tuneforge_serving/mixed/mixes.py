"""Per-sample adapter sets expressed as one peft adapter name each.

peft's per-sample path gives every sample exactly one adapter name and uses that name's
own `scaling`. A request, though, may bring several LoRAs, each with its own weight, and
two requests may use the same LoRA at different weights. `AdapterMixer` turns each
distinct set of `(slot, weight)` pairs of a batch into one name `tf_mix_<j>` on every
LoRA layer:

- one LoRA: an *alias*: `lora_A/lora_B[tf_mix_j]` are the slot's own modules (no copy)
  with `scaling[tf_mix_j] = slot scale x weight`;
- several LoRAs: a *combined adapter*: a pre-allocated pair of rank
  `max_combined * largest slot rank` into which the slots' A rows are stacked and their B
  columns copied, each multiplied by its scale x weight (`scaling = 1`), so
  `B_c @ A_c = sum_i w_i s_i B_i @ A_i`, the same delta as the slots active together.
  A slot takes its own rank's rows (rank buckets), so any `max_combined` slots fit; only
  more than `max_combined` LoRAs make a set incompatible. On a Conv2d layer the pair is a
  k x k conv (the slot A's kernel, stride, padding) and a 1x1 conv, as peft's own.

The mix names and combined buffers are created once per position and reused; nothing
grows with traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from peft.tuners.lora import LoraLayer

from tuneforge_serving.generation import LoraChoice
from tuneforge_serving.lora_slots import slot_name
from tuneforge_serving.mixed.routing import BASE

LayerKey = tuple[str, str]
ScaleLookup = Callable[[int, LayerKey], "float | None"]
"""The scale (alpha / r) of the adapter in slot `index` on a layer; None where it has none."""


def mix_name(position: int) -> str:
    """The peft adapter name of the `position`-th distinct adapter set of a batch."""
    return f"tf_mix_{position}"


def _weight(modules: Any, name: str) -> torch.Tensor:
    """The weight of `modules[name]` (a peft `lora_A`/`lora_B` ModuleDict entry)."""
    weight: torch.Tensor = modules[name].weight
    return weight


def _weight_of(module: torch.nn.Module) -> torch.Tensor:
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    return weight


def _combined_pair(
    slot_a: torch.nn.Module, slot_b: torch.nn.Module, rank: int
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A down/up pair of `rank` shaped like the slot's (Linear, or k x k conv + 1x1 conv)."""
    weight = _weight_of(slot_a)
    device, dtype = weight.device, weight.dtype
    out_features = int(_weight_of(slot_b).shape[0])
    if isinstance(slot_a, torch.nn.Conv2d):
        down: torch.nn.Module = torch.nn.Conv2d(
            slot_a.in_channels,
            rank,
            slot_a.kernel_size,  # type: ignore[arg-type]
            slot_a.stride,  # type: ignore[arg-type]
            slot_a.padding,  # type: ignore[arg-type]
            bias=False,
            device=device,
            dtype=dtype,
        )
        up: torch.nn.Module = torch.nn.Conv2d(
            rank, out_features, (1, 1), (1, 1), bias=False, device=device, dtype=dtype
        )
        return down, up
    down = torch.nn.Linear(int(weight.shape[1]), rank, bias=False, device=device, dtype=dtype)
    up = torch.nn.Linear(rank, out_features, bias=False, device=device, dtype=dtype)
    return down, up


class TooManyLoras(ValueError):
    """A sample combines more LoRAs than a combined adapter can hold."""


class AdapterMixer:
    """Maps per-sample LoRA sets to peft adapter names on every slot layer."""

    def __init__(
        self,
        layers: dict[LayerKey, LoraLayer],
        slot_ranks: int | Sequence[int],
        scale_of: ScaleLookup,
        max_combined: int,
    ) -> None:
        """`slot_ranks`: each slot's rank (rank buckets), or one rank for every slot."""
        self.layers = layers
        self._one_rank = slot_ranks if isinstance(slot_ranks, int) else None
        self.slot_ranks = [] if isinstance(slot_ranks, int) else list(slot_ranks)
        self.scale_of = scale_of
        self.max_combined = max_combined
        self._combined: dict[int, dict[LayerKey, tuple[torch.nn.Module, torch.nn.Module]]] = {}

    @property
    def combined_rank(self) -> int:
        """Rank of a combined adapter: `max_combined` of the largest slots stacked."""
        return self.max_combined * (self._one_rank or max(self.slot_ranks))

    def rank_of(self, index: int) -> int:
        """The rank of slot `index`."""
        return self._one_rank or self.slot_ranks[index]

    def prepare(self, choices: Sequence[LoraChoice]) -> list[str]:
        """One adapter name per choice, with aliases and combined adapters set up for them.

        Equal choices share a name, so give each choice in one canonical (sorted) order.
        """
        names: dict[LoraChoice, str] = {}
        result: list[str] = []
        for choice in choices:
            if choice not in names:
                names[choice] = self._bind(len(names), choice) if choice else BASE
            result.append(names[choice])
        return result

    def _bind(self, position: int, choice: LoraChoice) -> str:
        if len(choice) > self.max_combined:
            raise TooManyLoras(
                f"{len(choice)} LoRAs in one request; a mixed batch combines at most "
                f"{self.max_combined} (mixedBatching.maxCombinedLoras)"
            )
        name = mix_name(position)
        if len(choice) == 1:
            self._alias(name, *choice[0])
        else:
            self._combine(name, position, choice)
        return name

    def _register(self, layer: LoraLayer, name: str) -> None:
        if name not in layer.lora_dropout:
            layer.lora_dropout[name] = torch.nn.Identity()

    def _alias(self, name: str, index: int, weight: float) -> None:
        """`name` runs slot `index`'s own modules at `scale x weight` (no copy)."""
        slot = slot_name(index)
        for key, layer in self.layers.items():
            self._register(layer, name)
            layer.lora_A[name] = layer.lora_A[slot]
            layer.lora_B[name] = layer.lora_B[slot]
            scale = self.scale_of(index, key)
            layer.scaling[name] = 0.0 if scale is None else scale * weight

    def _buffers(self, position: int) -> dict[LayerKey, tuple[torch.nn.Module, torch.nn.Module]]:
        """The combined-adapter modules of `position`, allocated on first use."""
        buffers = self._combined.get(position)
        if buffers is None:
            buffers = {}
            for key, layer in self.layers.items():
                down, up = _combined_pair(
                    layer.lora_A[slot_name(0)], layer.lora_B[slot_name(0)], self.combined_rank
                )
                down.requires_grad_(False)
                up.requires_grad_(False)
                buffers[key] = (down, up)
            self._combined[position] = buffers
        return buffers

    @torch.no_grad()
    def _combine(self, name: str, position: int, choice: LoraChoice) -> None:
        """`name` runs the weighted sum of the slots in `choice` as one stacked adapter."""
        for key, (down, up) in self._buffers(position).items():
            layer = self.layers[key]
            _weight_of(down).zero_()
            _weight_of(up).zero_()
            offset = 0
            for index, weight in choice:
                rank = self.rank_of(index)
                rows = slice(offset, offset + rank)
                offset += rank
                scale = self.scale_of(index, key)
                if scale is None:
                    continue
                slot = slot_name(index)
                _weight_of(down)[rows].copy_(_weight(layer.lora_A, slot))
                _weight_of(up)[:, rows].copy_(_weight(layer.lora_B, slot) * (scale * weight))
            self._register(layer, name)
            layer.lora_A[name] = down
            layer.lora_B[name] = up
            layer.scaling[name] = 1.0

    def combined_bytes(self) -> int:
        """Memory held by allocated combined adapters."""
        return sum(
            _weight_of(down).nbytes + _weight_of(up).nbytes
            for buffers in self._combined.values()
            for down, up in buffers.values()
        )
