"""Parse a diffusers/peft LoRA safetensors file into per-module (A, B, scale) triples.

Accepted key layouts (what diffusers' `save_lora_weights` writes, with or without the
training scripts' `convert_state_dict_to_diffusers`):
`<component>.<module path>.lora_A.weight` / `.lora_B.weight`, `.lora.down.weight` /
`.lora.up.weight`, or `.lora_linear_layer.down.weight` / `.up.weight` (the text encoder's
pairs after `convert_state_dict_to_diffusers`, as the trainer and diffusers' training
scripts write them), where component is `unet` or `text_encoder`. A Linear's pair is
2-d; a Conv2d's (kohya LoCon, 1x1 `proj_in`/`conv_shortcut`) is 4-d: A `(r, in, kh, kw)`,
B `(out, r, 1, 1)`, as peft and diffusers hold them. The scale of each module
is `alpha / r` (`alpha / sqrt(r)` with rsLoRA) taken from the file's
`lora_adapter_metadata` (peft's LoraConfig as diffusers stores it), else the manifest's
alpha, else r (scale 1, as diffusers assumes).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from tuneforge_serving.errors import AdapterRejected

COMPONENTS = ("unet", "text_encoder")
_A_SUFFIXES = (".lora_A.weight", ".lora.down.weight", ".lora_linear_layer.down.weight")
_B_SUFFIXES = (".lora_B.weight", ".lora.up.weight", ".lora_linear_layer.up.weight")


@dataclass
class LoraModule:
    """One LoRA pair: delta W = scale * B @ A."""

    a: torch.Tensor
    """Down projection, shape (r, in_features) or, for a Conv2d, (r, in, kh, kw)."""
    b: torch.Tensor
    """Up projection, shape (out_features, r) or (out, r, 1, 1)."""
    scale: float


@dataclass
class StagedLora:
    """A LoRA adapter parsed into host memory, keyed by (component, module path)."""

    modules: dict[tuple[str, str], LoraModule] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """The largest rank over all modules."""
        return max((module.a.shape[0] for module in self.modules.values()), default=0)

    @property
    def nbytes(self) -> int:
        """Host memory the tensors take."""
        return sum(m.a.nbytes + m.b.nbytes for m in self.modules.values())


def _split_key(key: str) -> tuple[str, str, str] | None:
    """`(component, module path, 'a'|'b')` for a LoRA weight key; None for other keys."""
    component, _, rest = key.partition(".")
    if component not in COMPONENTS:
        return None
    for suffixes, kind in ((_A_SUFFIXES, "a"), (_B_SUFFIXES, "b")):
        for suffix in suffixes:
            if rest.endswith(suffix):
                return component, rest[: -len(suffix)], kind
    return None


def _pattern_value(patterns: dict[str, Any], module_path: str) -> Any | None:
    """peft's `rank_pattern`/`alpha_pattern` lookup: a pattern matches a name's suffix."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module_path):
            return value
    return None


def _component_config(metadata: dict[str, Any], component: str) -> dict[str, Any]:
    """The `component.`-prefixed entries of diffusers' LoRA metadata, prefix removed."""
    prefix = f"{component}."
    return {k[len(prefix) :]: v for k, v in metadata.items() if k.startswith(prefix)}


def read_lora_file(path: Path, manifest_alpha: float | None, name: str) -> StagedLora:
    """Read `path` (safetensors only) into a StagedLora; 422 for what the fast path can't take."""
    if path.suffix != ".safetensors":
        raise AdapterRejected(f"adapter {name}: {path.name} is not a .safetensors file")
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw_metadata = handle.metadata() or {}
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                tensors[key] = handle.get_tensor(key)
    except Exception as error:  # noqa: BLE001 - any parse failure means a bad artifact
        raise AdapterRejected(
            f"adapter {name}: {path.name} is not valid safetensors: {error}"
        ) from error
    metadata: dict[str, Any] = {}
    if "lora_adapter_metadata" in raw_metadata:
        metadata = json.loads(raw_metadata["lora_adapter_metadata"])
    return parse_lora_state_dict(tensors, metadata, manifest_alpha, name)


def parse_lora_state_dict(
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    manifest_alpha: float | None,
    name: str,
) -> StagedLora:
    """Pair A/B tensors per module and compute each module's scale."""
    pairs: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in tensors.items():
        split = _split_key(key)
        if split is None:
            unknown.append(key)
            continue
        component, module_path, kind = split
        pairs.setdefault((component, module_path), {})[kind] = tensor
    if unknown:
        raise AdapterRejected(
            f"adapter {name}: unsupported LoRA keys such as {unknown[0]!r}; export with "
            "diffusers' save_lora_weights (unet./text_encoder. prefixes, lora_A/lora_B)"
        )
    staged = StagedLora()
    configs = {component: _component_config(metadata, component) for component in COMPONENTS}
    for (component, module_path), pair in pairs.items():
        if set(pair) != {"a", "b"}:
            raise AdapterRejected(f"adapter {name}: {component}.{module_path} lacks its A or B")
        a, b = pair["a"], pair["b"]
        conv_pair = a.ndim == 4 and b.ndim == 4 and tuple(b.shape[2:]) == (1, 1)
        if not (conv_pair or (a.ndim == 2 and b.ndim == 2)):
            raise AdapterRejected(
                f"adapter {name}: {component}.{module_path} is neither a Linear LoRA pair "
                f"(2-d A and B) nor a convolution one (A (r, in, kh, kw), B (out, r, 1, 1)): "
                f"A {tuple(a.shape)}, B {tuple(b.shape)}"
            )
        if a.shape[0] != b.shape[1]:
            raise AdapterRejected(
                f"adapter {name}: {component}.{module_path} is not a LoRA pair: A has rank "
                f"{a.shape[0]}, B {b.shape[1]}"
            )
        config = configs[component]
        if config.get("use_dora"):
            raise AdapterRejected(f"adapter {name}: DoRA adapters cannot be hot-swapped")
        rank = a.shape[0]
        alpha = _pattern_value(config.get("alpha_pattern") or {}, module_path)
        if alpha is None:
            alpha = config.get("lora_alpha", manifest_alpha if manifest_alpha else rank)
        scale = float(alpha) / (math.sqrt(rank) if config.get("use_rslora") else rank)
        staged.modules[(component, module_path)] = LoraModule(
            a=a.float().contiguous(), b=b.float().contiguous(), scale=scale
        )
    return staged
