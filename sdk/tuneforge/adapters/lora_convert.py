"""LoRA files between the community layouts and the canonical one, on diffusers' key maps.

kohya / A1111 -> canonical: each module's `alpha / rank` is folded into its up weights (the
same baking diffusers does for LoKr), then diffusers' `_convert_non_diffusers_lora_to_diffusers`
renames the keys and `convert_unet_state_dict_to_peft` / `convert_state_dict_to_peft` bring
them to peft's `lora_A`/`lora_B`. diffusers/peft -> canonical: the same peft conversion, the
scale taken from the file's `lora_adapter_metadata` (peft's `LoraConfig`). Canonical ->
kohya: diffusers' `convert_state_dict_to_kohya` (its `.alpha` is the rank: scale 1, as baked).

The torch stack (torch, diffusers, safetensors) is imported inside the functions, so the
rest of the SDK stays torch-free; `tuneforge adapters import/export` need the `[serving]` or
`[trainer]` extra.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.adapters.layouts import AdapterFormatError, Layout
from tuneforge.contract import LoraSection

COMPONENTS = ("unet", "text_encoder")
ALL_LAYERS = "all"
"""A slot target list entry meaning every Linear and Conv2d layer (serving's default)."""
_KOHYA_TEXT_ENCODER = "lora_te1_"
"""The prefix diffusers' `convert_state_dict_to_kohya` gives text-encoder keys."""


@dataclass
class LoraPair:
    """One module's LoRA: delta W = scale * up @ down."""

    down: Any
    """(rank, in_features) or, for a convolution, (rank, in, kh, kw)."""
    up: Any
    """(out_features, rank) or (out, rank, 1, 1)."""
    scale: float = 1.0


@dataclass
class LoraModules:
    """A LoRA as (component, module path) -> pair, in diffusers' module names."""

    pairs: dict[tuple[str, str], LoraPair] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """The largest rank over all modules."""
        return max(int(pair.down.shape[0]) for pair in self.pairs.values())


def read_lora(path: Path, layout: Layout, default_alpha: float | None = None) -> LoraModules:
    """The LoRA in `path` (layout `kohya` or `diffusers`) as float32 pairs with their scales.

    `default_alpha`: a diffusers file's alpha when its metadata names none (else the rank).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key).float() for key in handle.keys()}  # noqa: SIM118
    if layout is Layout.KOHYA:
        return _from_kohya(tensors, path.name)
    config = json.loads(metadata.get("lora_adapter_metadata", "{}"))
    return _from_diffusers(tensors, config, path.name, default_alpha)


def _from_kohya(tensors: dict[str, Any], name: str) -> LoraModules:
    conversion: Any = importlib.import_module("diffusers.loaders.lora_conversion_utils")

    baked: dict[str, Any] = {}
    for key, tensor in tensors.items():
        if not key.endswith(".lora_down.weight"):
            continue
        module = key.removesuffix(".lora_down.weight")
        up = tensors.get(f"{module}.lora_up.weight")
        if up is None:
            raise AdapterFormatError(f"{name}: {module} has lora_down but no lora_up")
        rank = int(tensor.shape[0])
        alpha = tensors.get(f"{module}.alpha")
        scale = float(alpha.item()) / rank if alpha is not None else 1.0
        baked[key] = tensor
        baked[f"{module}.lora_up.weight"] = up * scale
    try:
        converted, _ = conversion._convert_non_diffusers_lora_to_diffusers(baked)
    except (ValueError, KeyError) as error:
        raise AdapterFormatError(f"{name}: diffusers cannot map its kohya keys: {error}") from error
    return _pairs(_to_peft(converted), {}, name, None)


def _from_diffusers(
    tensors: dict[str, Any], config: dict[str, Any], name: str, default_alpha: float | None
) -> LoraModules:
    if any(key.endswith(".lora_magnitude_vector") for key in tensors) or any(
        config.get(f"{component}.use_dora") for component in COMPONENTS
    ):
        raise AdapterFormatError(f"{name}: DoRA adapters are not accepted")
    return _pairs(_to_peft(tensors), config, name, default_alpha)


def _to_peft(state: dict[str, Any]) -> dict[str, Any]:
    """`unet.…`/`text_encoder.…` keys in any diffusers spelling -> peft `lora_A`/`lora_B`."""
    utils: Any = importlib.import_module("diffusers.utils.state_dict_utils")

    out: dict[str, Any] = {}
    for component in COMPONENTS:
        prefix = f"{component}."
        part = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if not part:
            continue
        if component == "unet":
            part = utils.convert_unet_state_dict_to_peft(part)
        elif not any(".lora_A." in key for key in part):
            part = utils.convert_state_dict_to_peft(
                part, original_type=utils.StateDictType.DIFFUSERS_OLD
            )
        out.update({prefix + key: value for key, value in part.items()})
    return out


def _pairs(
    peft_state: dict[str, Any], config: dict[str, Any], name: str, default_alpha: float | None
) -> LoraModules:
    modules = LoraModules()
    for key, down in peft_state.items():
        if not key.endswith(".lora_A.weight"):
            continue
        component, _, module = key.removesuffix(".lora_A.weight").partition(".")
        up = peft_state.get(key.replace(".lora_A.", ".lora_B."))
        if up is None:
            raise AdapterFormatError(f"{name}: {component}.{module} has no up (lora_B) weight")
        scale = _scale(config, component, module, int(down.shape[0]), default_alpha)
        modules.pairs[(component, module)] = LoraPair(down=down, up=up, scale=scale)
    if not modules.pairs:
        raise AdapterFormatError(f"{name}: no LoRA pairs found")
    return modules


def _scale(
    config: dict[str, Any], component: str, module: str, rank: int, default_alpha: float | None
) -> float:
    """alpha / rank (alpha / sqrt(rank) with rsLoRA) from peft's config, as diffusers reads it."""
    prefix = f"{component}."
    own = {k.removeprefix(prefix): v for k, v in config.items() if k.startswith(prefix)}
    alpha = next(
        (
            value
            for pattern, value in (own.get("alpha_pattern") or {}).items()
            if re.match(rf"(.*\.)?({pattern})$", module)
        ),
        own.get("lora_alpha", default_alpha or rank),
    )
    return float(alpha) / (math.sqrt(rank) if own.get("use_rslora") else rank)


def write_canonical(modules: LoraModules, path: Path) -> int:
    """Write `path` in the canonical layout (scale folded in, zero-padded to one rank).

    Returns that rank. Zero rows/columns add nothing to `up @ down`, so the padding is exact.
    """
    import torch
    from safetensors.torch import save_file

    rank = modules.rank
    tensors: dict[str, Any] = {}
    for (component, module), pair in sorted(modules.pairs.items()):
        down = torch.zeros((rank, *pair.down.shape[1:]), dtype=torch.float32)
        up = torch.zeros((pair.up.shape[0], rank, *pair.up.shape[2:]), dtype=torch.float32)
        own = int(pair.down.shape[0])
        down[:own] = pair.down
        up[:, :own] = pair.up * pair.scale
        tensors[f"{component}.{module}.lora_A.weight"] = down.contiguous()
        tensors[f"{component}.{module}.lora_B.weight"] = up.contiguous()
    save_file(tensors, str(path))
    return rank


def slot_target(module: str, targets: Sequence[str]) -> str | None:
    """The target name serving's slots hold `module` under (its leaf name for `all`), or None."""
    if ALL_LAYERS in targets:
        parts = module.split(".")
        return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]
    return next((t for t in targets if module == t or module.endswith(f".{t}")), None)


def write_canonical_section(
    modules: LoraModules, path: Path, unet_targets: Sequence[str] = (ALL_LAYERS,)
) -> LoraSection:
    """Write `modules` canonically (`write_canonical`); returns their manifest section: the
    rank (alpha = rank: scales are folded in), the UNet modules' slot target names under
    `unet_targets` (those targets when no UNet module), and whether the text encoder has any."""
    rank = write_canonical(modules, path)
    found = {slot_target(module, unet_targets) for component, module in modules.pairs
             if component == "unet"}  # fmt: skip
    return LoraSection(
        rank=rank,
        alpha=float(rank),
        target_modules=sorted(t for t in found if t is not None) or list(unet_targets),
        text_encoder=any(component == "text_encoder" for component, _ in modules.pairs),
    )


def to_kohya(weights: Path, manifest_alpha: float) -> dict[str, Any]:
    """The kohya/A1111 state dict of a registered LoRA file (diffusers' own conversion).

    Each module's scale (from the file's metadata, else `manifest_alpha / rank`) is folded
    into its up weights, so each `.alpha` tensor is the module's rank: scale 1 in A1111,
    ComfyUI and diffusers alike.
    """
    import torch

    utils: Any = importlib.import_module("diffusers.utils.state_dict_utils")

    modules = read_lora(weights, Layout.DIFFUSERS, default_alpha=manifest_alpha)
    state: dict[str, Any] = {}
    for (component, module), pair in modules.pairs.items():
        base = f"{component}.{_kohya_text_path(component, module)}"
        state[f"{base}.lora_A.weight"] = pair.down.contiguous()
        state[f"{base}.lora_B.weight"] = (pair.up * pair.scale).contiguous()
    kohya = utils.convert_state_dict_to_kohya(state)
    renamed = {
        (
            "lora_te_" + key.removeprefix(_KOHYA_TEXT_ENCODER)
            if key.startswith(_KOHYA_TEXT_ENCODER)
            else key
        ): value
        for key, value in kohya.items()
    }
    return {
        key: (value.float() if torch.is_tensor(value) else value) for key, value in renamed.items()
    }


def _kohya_text_path(component: str, module: str) -> str:
    """A1111 names text-encoder modules from `text_model.` (transformers 4's spelling)."""
    if component == "text_encoder" and not module.startswith("text_model."):
        return f"text_model.{module}"
    return module
