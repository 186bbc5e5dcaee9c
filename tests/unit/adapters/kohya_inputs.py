"""Community-layout test files built on the tiny model with diffusers' own conversions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.contract import LORA_WEIGHTS


def write_kohya(adapter_dir: Path, out: Path, alpha: float) -> Path:
    """The kohya/A1111 layout of a trainer-style LoRA folder, via `convert_state_dict_to_kohya`.

    The folder's LoRA was made with `lora_alpha=alpha`; kohya keeps the raw weights and says
    so in each module's `.alpha` tensor (diffusers writes the rank there, so it is set).
    """
    import torch
    from diffusers.utils import convert_state_dict_to_kohya, convert_unet_state_dict_to_peft
    from safetensors.torch import load_file, save_file

    state = load_file(str(adapter_dir / LORA_WEIGHTS))
    unet = {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")}
    peft = {f"unet.{k}": v for k, v in convert_unet_state_dict_to_peft(unet).items()}
    for key, value in state.items():
        if key.startswith("text_encoder."):
            module = key.removeprefix("text_encoder.")
            peft[f"text_encoder.text_model.{module.removeprefix('text_model.')}"] = value
    _add_zero_out_proj(peft)
    kohya = convert_state_dict_to_kohya(peft)
    kohya = {
        ("lora_te_" + k.removeprefix("lora_te1_") if k.startswith("lora_te1_") else k): (
            torch.tensor(float(alpha)) if k.endswith(".alpha") else v.contiguous()
        )
        for k, v in kohya.items()
    }
    save_file(kohya, str(out))
    return out


def _add_zero_out_proj(peft: dict[str, Any]) -> None:
    """Give each text-encoder layer an `out_proj` pair with zero up weights (no effect).

    diffusers' `load_lora_weights` tells the old text-encoder key style from a `to_out_lora`
    key; a kohya file without `out_proj` LoRA layers fails to load there, which would leave
    the reference nothing to compare against.
    """
    import torch

    for key in [k for k in peft if k.startswith("text_encoder.") and ".q_proj.lora_A." in k]:
        down = peft[key]
        out_key = key.replace(".q_proj.", ".out_proj.")
        if out_key not in peft:
            width = down.shape[1]
            peft[out_key] = torch.randn(down.shape[0], width)
            peft[out_key.replace(".lora_A.", ".lora_B.")] = torch.zeros(width, down.shape[0])
