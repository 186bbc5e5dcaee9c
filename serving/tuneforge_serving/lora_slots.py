"""Pre-allocated LoRA slots: peft layers injected once, adapters copied in.

At start-up every target Linear of the UNet (and text encoder) gets `n_slots` peft LoRA
adapters of rank `slot_rank`, all zero and inactive. Attaching an adapter to a slot is a
copy of its A/B tensors into the slot's (zero-padded) weights; activating a request's
adapters sets, per layer, which slots run and with what scale. No module is injected,
deleted or re-created after start-up, so switching costs a copy and nothing leaks (the
failure modes of repeated load/delete: diffusers #8532, peft #1639). This is the
semantics of diffusers' `enable_lora_hotswap(target_rank=...)` + `hotswap=True`, done
directly on the tensors.

Mixed-adapter batches (`tuneforge_serving.mixed`) use the same slots: each sample names
its slot(s) through peft's per-sample `adapter_names` path.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer

from tuneforge_serving.errors import AdapterRejected
from tuneforge_serving.lora_format import StagedLora


def slot_name(index: int) -> str:
    """The peft adapter name of slot `index`."""
    return f"tf_slot_{index}"


class LoraSlotBank:
    """`n_slots` LoRA slots of rank `slot_rank` on the given components' target modules."""

    def __init__(
        self,
        components: dict[str, torch.nn.Module],
        target_modules: dict[str, list[str]],
        n_slots: int,
        slot_rank: int,
    ) -> None:
        self.n_slots = n_slots
        self.slot_rank = slot_rank
        self.layers: dict[tuple[str, str], LoraLayer] = {}
        for component, module in components.items():
            targets = target_modules.get(component) or []
            if not targets:
                continue
            config = LoraConfig(
                r=slot_rank, lora_alpha=slot_rank, target_modules=targets, lora_dropout=0.0
            )
            with warnings.catch_warnings():  # peft warns about every adapter after the first
                warnings.simplefilter("ignore", UserWarning)
                for index in range(n_slots):
                    inject_adapter_in_model(config, module, adapter_name=slot_name(index))
            module.requires_grad_(False)
            for path, layer in module.named_modules():
                if isinstance(layer, LoraLayer):
                    self.layers[(component, path)] = layer
        self._mounts = {key: self._mount_point(components[key[0]], key[1]) for key in self.layers}
        self._aliases = self._path_aliases()
        self._written: list[set[tuple[str, str]]] = [set() for _ in range(n_slots)]
        self._scales: list[dict[tuple[str, str], float]] = [{} for _ in range(n_slots)]
        with torch.no_grad():
            for layer in self.layers.values():
                for index in range(n_slots):
                    layer.lora_A[slot_name(index)].weight.zero_()
                    layer.lora_B[slot_name(index)].weight.zero_()
        self.activate([])

    @staticmethod
    def _mount_point(root: torch.nn.Module, path: str) -> tuple[torch.nn.Module, str]:
        """The parent module and attribute name under which the layer at `path` hangs."""
        parent_path, _, attribute = path.rpartition(".")
        return (root.get_submodule(parent_path) if parent_path else root), attribute

    def _path_aliases(self) -> dict[tuple[str, str], tuple[str, str]]:
        """Text-encoder paths with and without `text_model.` (transformers 4 vs 5 layouts)."""
        aliases: dict[tuple[str, str], tuple[str, str]] = {}
        for component, path in self.layers:
            if component == "text_encoder":
                other = (
                    path.removeprefix("text_model.")
                    if path.startswith("text_model.")
                    else f"text_model.{path}"
                )
                aliases[(component, other)] = (component, path)
        return aliases

    def _layer_key(self, key: tuple[str, str]) -> tuple[str, str] | None:
        if key in self.layers:
            return key
        return self._aliases.get(key)

    def check(self, staged: StagedLora, name: str) -> None:
        """Raise AdapterRejected (422) unless `staged` fits the slots (rank, modules, shapes)."""
        if staged.rank > self.slot_rank:
            raise AdapterRejected(
                f"adapter {name}: LoRA rank {staged.rank} exceeds the serving slot rank "
                f"{self.slot_rank} (hotswap.maxLoraRank); retrain with rank <= {self.slot_rank} "
                "or raise the server's maxLoraRank"
            )
        for key, module in staged.modules.items():
            layer_key = self._layer_key(key)
            if layer_key is None:
                component, path = key
                raise AdapterRejected(
                    f"adapter {name}: {component} module {path!r} has no LoRA slot; the server "
                    f"serves {component} target modules "
                    f"{self._targets_of(component) or 'none'} (hotswap config)"
                )
            slot_a = self.layers[layer_key].lora_A[slot_name(0)].weight
            slot_b = self.layers[layer_key].lora_B[slot_name(0)].weight
            if module.a.shape[1] != slot_a.shape[1] or module.b.shape[0] != slot_b.shape[0]:
                raise AdapterRejected(
                    f"adapter {name}: {key[0]}.{key[1]} has shapes A {tuple(module.a.shape)} "
                    f"B {tuple(module.b.shape)}, which do not fit this base model"
                )

    def _targets_of(self, component: str) -> list[str]:
        return sorted({path.rsplit(".", 1)[-1] for comp, path in self.layers if comp == component})

    @torch.no_grad()
    def write(self, index: int, staged: StagedLora) -> None:
        """Copy `staged` into slot `index` (zero-padded to the slot rank); clears the rest."""
        name = slot_name(index)
        new_keys: set[tuple[str, str]] = set()
        scales: dict[tuple[str, str], float] = {}
        for key, module in staged.modules.items():
            layer_key = self._layer_key(key)
            if layer_key is None:  # check() refuses these before a write
                raise AdapterRejected(f"LoRA module {key} has no slot")
            layer = self.layers[layer_key]
            rank = module.a.shape[0]
            weight_a = layer.lora_A[name].weight
            weight_b = layer.lora_B[name].weight
            weight_a[:rank].copy_(module.a, non_blocking=True)
            weight_b[:, :rank].copy_(module.b, non_blocking=True)
            if rank < self.slot_rank:
                weight_a[rank:].zero_()
                weight_b[:, rank:].zero_()
            new_keys.add(layer_key)
            scales[layer_key] = module.scale
        for stale in self._written[index] - new_keys:
            self.layers[stale].lora_A[name].weight.zero_()
            self.layers[stale].lora_B[name].weight.zero_()
        self._written[index] = new_keys
        self._scales[index] = scales

    @torch.no_grad()
    def clear(self, index: int) -> None:
        """Zero slot `index` so nothing of its last adapter remains."""
        name = slot_name(index)
        for key in self._written[index]:
            self.layers[key].lora_A[name].weight.zero_()
            self.layers[key].lora_B[name].weight.zero_()
        self._written[index] = set()
        self._scales[index] = {}

    def activate(self, slots: Sequence[tuple[int, float]]) -> None:
        """Make exactly `slots` (index, weight) active on every layer that they cover.

        A layer no active slot covers is bypassed: its parent points at the plain base
        Linear again, so the base model runs exactly as without slots (no peft overhead).
        """
        for key, layer in self.layers.items():
            active: list[str] = []
            for index, weight in slots:
                scale = self._scales[index].get(key)
                if scale is None:
                    continue
                name = slot_name(index)
                layer.scaling[name] = scale * weight
                active.append(name)
            layer._active_adapter = active
            parent, attribute = self._mounts[key]
            setattr(parent, attribute, layer if active else layer.base_layer)

    def scale(self, index: int, key: tuple[str, str]) -> float | None:
        """alpha / r of the adapter in slot `index` on layer `key`; None where it has none."""
        return self._scales[index].get(key)
