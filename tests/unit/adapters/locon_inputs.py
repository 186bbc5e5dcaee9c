"""A kohya-layout LoCon file for the tiny model, built from the model's own layers.

Every layer kohya-ss's `networks/lora.py` trains with `conv_dim` set gets a pair: the UNet's
transformer blocks (attention, feed-forward, 1x1 `proj_in`/`proj_out`), its ResNet blocks
(3x3 `conv1`/`conv2`, 1x1 `conv_shortcut`, `time_emb_proj`) and down/up-samplers, and the text
encoder's attention and MLP. A convolution's down is a k x k conv to the rank, its up a 1x1
conv, as kohya writes them. Random seeded values, a per-module `.alpha` that differs from the
rank, so the scale matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_UNET_PARTS = ("attentions", "resnets", "downsamplers", "upsamplers")
_TEXT_PARTS = ("self_attn", "mlp")


def kohya_module_names(pipe: Any) -> dict[str, Any]:
    """kohya key stem -> base layer (Linear or Conv2d) for the layers kohya LoCon trains."""
    import torch

    names: dict[str, Any] = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and any(
            f".{part}." in f".{name}." for part in _UNET_PARTS
        ):
            names["lora_unet_" + name.replace(".", "_")] = module
    for name, module in pipe.text_encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and any(f".{p}." in name for p in _TEXT_PARTS):
            path = name if name.startswith("text_model.") else f"text_model.{name}"
            names["lora_te_" + path.replace(".", "_")] = module
    return names


def write_kohya_locon(
    pipe: Any, out: Path, *, rank: int, alpha: float, seed: int, magnitude: float = 0.05
) -> Path:
    """Write a kohya LoCon file of `rank` for `pipe`'s model to `out` (safetensors)."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for stem, module in sorted(kohya_module_names(pipe).items()):
        if isinstance(module, torch.nn.Conv2d):
            down_shape: tuple[int, ...] = (rank, module.in_channels, *module.kernel_size)
            up_shape: tuple[int, ...] = (module.out_channels, rank, 1, 1)
        else:
            down_shape = (rank, module.in_features)
            up_shape = (module.out_features, rank)
        tensors[f"{stem}.lora_down.weight"] = torch.randn(down_shape, generator=generator)
        tensors[f"{stem}.lora_up.weight"] = torch.randn(up_shape, generator=generator) * magnitude
        tensors[f"{stem}.alpha"] = torch.tensor(float(alpha))
    save_file(tensors, str(out))
    return out
