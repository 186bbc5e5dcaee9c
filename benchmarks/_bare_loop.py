"""The baseline side of the training benchmarks: SD 1.5's parts loaded the way diffusers'
training examples load them (frozen; the caller adds the LoRA it trains)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_frozen_parts(model_dir: Path) -> tuple[Any, Any, Any, Any, Any]:
    """tokenizer, text encoder, VAE, UNet and noise scheduler of a diffusers folder, frozen."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(model_dir / "tokenizer"), model_max_length=77)
    text_encoder = CLIPTextModel.from_pretrained(str(model_dir), subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(str(model_dir), subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet")
    noise_scheduler = DDPMScheduler.from_pretrained(str(model_dir), subfolder="scheduler")
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
    return tokenizer, text_encoder, vae, unet, noise_scheduler
