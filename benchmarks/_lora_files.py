"""Seeded random LoRA adapter folders for a UNet, in the layout TuneForge registers.

Shared by the serving benchmarks: `write_lora` puts `pytorch_lora_weights.safetensors`
(peft's `lora_A`/`lora_B` names under `unet.`) and a v2 adapter manifest in a folder, for
every linear attention projection the default LoRA targets name. The scales keep the
adapter's effect moderate at any width (down ~ 1/sqrt(in), up ~ 0.5/sqrt(rank)).
"""

from __future__ import annotations

from pathlib import Path

import torch


def lora_tensors(unet: torch.nn.Module, seed: int, rank: int) -> dict[str, torch.Tensor]:
    """`unet.<path>.lora_A/B.weight` for each default LoRA target of `unet` (seeded)."""
    from tuneforge.contract import DEFAULT_LORA_TARGETS

    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for path, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and path.endswith(DEFAULT_LORA_TARGETS):
            down = torch.randn(rank, module.in_features, generator=generator)
            up = torch.randn(module.out_features, rank, generator=generator)
            tensors[f"unet.{path}.lora_A.weight"] = down / module.in_features**0.5
            tensors[f"unet.{path}.lora_B.weight"] = up * 0.5 / rank**0.5
    return tensors


def write_lora(
    unet: torch.nn.Module,
    folder: Path,
    seed: int,
    rank: int,
    *,
    base_model: str = "benchmark",
    fingerprint: str | None = None,
) -> Path:
    """An adapter folder (weights and manifest) for `unet`; `fingerprint` pins its base."""
    from safetensors.torch import save_file

    from tuneforge.contract import (
        ADAPTER_MANIFEST,
        DEFAULT_LORA_TARGETS,
        LORA_WEIGHTS,
        AdapterManifest,
        LoraSection,
    )

    folder.mkdir(parents=True, exist_ok=True)
    save_file(lora_tensors(unet, seed, rank), str(folder / LORA_WEIGHTS))
    manifest = AdapterManifest(
        method="lora",
        base_model=base_model,
        base_model_fingerprint=fingerprint,
        files=[LORA_WEIGHTS],
        lora=LoraSection(rank=rank, alpha=rank, target_modules=list(DEFAULT_LORA_TARGETS)),
    )
    (folder / ADAPTER_MANIFEST).write_text(manifest.model_dump_json())
    return folder
