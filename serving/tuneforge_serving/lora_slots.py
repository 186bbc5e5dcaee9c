"""Pre-allocated LoRA slots: peft layers injected once, adapters copied in.

At start-up every slot layer (by default every Linear and Conv2d of the UNet and the text
encoder) gets one peft LoRA adapter per slot, all zero and inactive. Slots come in rank
buckets (`slot_plan`): slot `i` has rank `ranks[i]`; an adapter of rank `r` is copied into
a slot of rank >= r, zero-padded (exact: zero rows of A and columns of B add nothing).
Attaching an adapter to a slot is a copy of its A/B tensors into the slot's weights;
activating a request's adapters sets, per layer, which slots run and with what scale (the
adapter's own `alpha / r` per module, never the slot's). No module is injected, deleted or
re-created after start-up, so switching costs a copy and nothing leaks (the failure modes
of repeated load/delete: diffusers #8532, peft #1639). This is the semantics of diffusers'
`enable_lora_hotswap(target_rank=...)` + `hotswap=True`, done directly on the tensors.

A Conv2d slot is peft's LoRA Conv2d: A a k x k conv (the base's kernel, stride, padding)
to the rank, B a 1x1 conv: kohya's LoCon layers, and the 1x1 `proj_in`/`conv_shortcut`.

Mixed-adapter batches (`tuneforge_serving.mixed`) use the same slots: each sample names
its slot(s) through peft's per-sample `adapter_names` path.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer

from tuneforge_serving.config import ALL_LAYERS
from tuneforge_serving.errors import AdapterRejected
from tuneforge_serving.lora_format import StagedLora
from tuneforge_serving.slot_plan import fits

SLOT_LAYER_TYPES = (torch.nn.Linear, torch.nn.Conv2d)


def slot_name(index: int) -> str:
    """The peft adapter name of slot `index`."""
    return f"tf_slot_{index}"


def slot_layer_paths(module: torch.nn.Module, targets: Sequence[str]) -> list[str]:
    """Paths of the Linear/Conv2d layers of `module` that `targets` name (`all`, or name
    suffixes as peft matches them)."""
    paths: list[str] = []
    for path, layer in module.named_modules():
        if not isinstance(layer, SLOT_LAYER_TYPES) or isinstance(layer, LoraLayer):
            continue
        if ALL_LAYERS in targets or any(path == t or path.endswith(f".{t}") for t in targets):
            paths.append(path)
    return paths


def bytes_per_rank(
    components: dict[str, torch.nn.Module], paths: dict[str, list[str]], dtype: torch.dtype
) -> int:
    """Bytes one rank of one slot takes over `paths`: one row of A, one column of B each."""
    size = torch.empty((), dtype=dtype).element_size()
    total = 0
    for component, names in paths.items():
        for path in names:
            layer = components[component].get_submodule(path)
            weight: torch.Tensor = layer.weight  # type: ignore[assignment]
            per_row = int(weight[0].numel()) if weight.ndim == 4 else int(weight.shape[1])
            total += (per_row + int(weight.shape[0])) * size
    return total


class LoraSlotBank:
    """One LoRA slot per entry of `ranks` (its rank) on the given components' layers."""

    def __init__(
        self,
        components: dict[str, torch.nn.Module],
        layer_paths: dict[str, list[str]],
        ranks: Sequence[int],
    ) -> None:
        self.ranks = list(ranks)
        self.n_slots = len(self.ranks)
        self.max_rank = max(self.ranks)
        self.components = components
        self.layers: dict[tuple[str, str], LoraLayer] = {}
        for component, paths in layer_paths.items():
            if not paths:
                continue
            module = components[component]
            with warnings.catch_warnings():  # peft warns about every adapter after the first
                warnings.simplefilter("ignore", UserWarning)
                for index, rank in enumerate(self.ranks):
                    config = LoraConfig(
                        r=rank, lora_alpha=rank, target_modules=list(paths), lora_dropout=0.0
                    )
                    inject_adapter_in_model(config, module, adapter_name=slot_name(index))
            module.requires_grad_(False)
            for path, layer in module.named_modules():
                if isinstance(layer, LoraLayer):
                    self.layers[(component, path)] = layer
        self._mounts = {key: self._mount_point(components[key[0]], key[1]) for key in self.layers}
        self._aliases = self._path_aliases()
        self._written: list[set[tuple[str, str]]] = [set() for _ in self.ranks]
        self._scales: list[dict[tuple[str, str], float]] = [{} for _ in self.ranks]
        with torch.no_grad():
            for layer in self.layers.values():
                for index in range(self.n_slots):
                    layer.lora_A[slot_name(index)].weight.zero_()
                    layer.lora_B[slot_name(index)].weight.zero_()
        self.activate([])

    @property
    def slot_rank(self) -> int:
        """The largest slot rank (what a combined adapter reserves per LoRA)."""
        return self.max_rank

    def slots_for(self, rank: int) -> list[int]:
        """Slot indices that can hold an adapter of `rank`, smallest slot rank first."""
        return sorted(
            (i for i, slot in enumerate(self.ranks) if slot >= rank), key=lambda i: self.ranks[i]
        )

    def fits(self, adapter_ranks: Sequence[int]) -> bool:
        """Whether adapters of these ranks can be attached all at once."""
        return fits(self.ranks, adapter_ranks)

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
        """AdapterRejected (422) unless `staged` fits the slots: its rank within the largest
        slot (else "over the memory budget"), every layer a slot layer of the same shape
        (else "does not fit this base", naming the first layer that differs)."""
        if staged.rank > self.max_rank:
            raise AdapterRejected(
                f"adapter {name}: LoRA rank {staged.rank} is over the memory budget: the "
                f"largest LoRA slot of this server has rank {self.max_rank} "
                "(hotswap.rankBuckets within hotswap.memoryBudgetMB); retrain with rank <= "
                f"{self.max_rank} or give the server a larger bucket or budget"
            )
        for key in sorted(staged.modules):
            module = staged.modules[key]
            component, path = key
            layer_key = self._layer_key(key)
            if layer_key is None:
                raise AdapterRejected(self._no_slot(name, component, path))
            slot_a: torch.Tensor = self.layers[layer_key].lora_A[slot_name(0)].weight  # type: ignore[assignment]
            slot_b: torch.Tensor = self.layers[layer_key].lora_B[slot_name(0)].weight  # type: ignore[assignment]
            delta = (int(module.b.shape[0]), *(int(n) for n in module.a.shape[1:]))
            base = (int(slot_b.shape[0]), *(int(n) for n in slot_a.shape[1:]))
            if delta != base or module.b.ndim != slot_b.ndim:
                raise AdapterRejected(
                    f"adapter {name} does not fit this base model: its first layer whose "
                    f"shape differs is {component}.{path}: the LoRA's update is {delta} but "
                    f"the base layer's weight is {base} (out, in[, kh, kw]); use an adapter "
                    "made for this base model"
                )

    def _no_slot(self, name: str, component: str, path: str) -> str:
        root = self.components.get(component)
        try:
            layer = root.get_submodule(path) if root is not None else None
        except AttributeError:
            layer = None
        if layer is None or not isinstance(layer, SLOT_LAYER_TYPES):
            return (
                f"adapter {name} does not fit this base model: its first layer that differs "
                f"is {component}.{path}: the base has no Linear or Conv2d layer there; use "
                "an adapter made for this base model"
            )
        return (
            f"adapter {name}: {component} module {path!r} has no LoRA slot; the server "
            f"serves {component} target modules {self._targets_of(component) or 'none'} "
            "(hotswap unetTargetModules/textEncoderTargetModules; `all` serves every layer)"
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
            if rank < self.ranks[index]:
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
