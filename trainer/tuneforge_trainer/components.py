"""The Stable Diffusion parts a training step needs, and the one module strategies wrap.

`Denoiser` holds the text encoder and the UNet as one `nn.Module` whose forward goes from
token ids and noisy latents to the UNet's prediction. DDP, FSDP2 and DeepSpeed each wrap
this single module, whatever a method trains inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneforge.adapter import base_model_fingerprint


@dataclass
class Components:
    """Tokenizer, text encoder, VAE, UNet and the training noise scheduler of a base model."""

    model_dir: Path
    tokenizer: Any
    text_encoder: nn.Module
    vae: nn.Module
    unet: nn.Module
    noise_scheduler: Any

    @property
    def fingerprint(self) -> str:
        """The base model's fingerprint (see `tuneforge.adapter.base_model_fingerprint`)."""
        return base_model_fingerprint(self.model_dir)


def load_tokenizer(model_dir: Path) -> Any:
    """The CLIP tokenizer of a diffusers folder (77 positions, as SD 1.5)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(model_dir / "tokenizer"), model_max_length=77)


def load_components(model_dir: Path) -> Components:
    """Load every part in fp32 from safetensors, frozen; methods unfreeze what they train."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    common: dict[str, Any] = {"use_safetensors": True}
    text_encoder = CLIPTextModel.from_pretrained(str(model_dir), subfolder="text_encoder", **common)
    vae = AutoencoderKL.from_pretrained(str(model_dir), subfolder="vae", **common)
    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet", **common)
    scheduler = DDPMScheduler.from_pretrained(str(model_dir), subfolder="scheduler")
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
        module.to(torch.float32)
    vae.eval()
    return Components(
        model_dir=model_dir,
        tokenizer=load_tokenizer(model_dir),
        text_encoder=text_encoder,
        vae=vae,
        unet=unet,
        noise_scheduler=scheduler,
    )


def unet_module_names(model_dir: Path) -> dict[str, str]:
    """Every UNet submodule name and its class, from the config alone (no weights read)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(str(model_dir), subfolder="unet")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return {name: type(module).__name__ for name, module in unet.named_modules() if name}


class Denoiser(nn.Module):
    """Text encoder + UNet: `forward(input_ids, noisy_latents, timesteps) -> prediction`."""

    def __init__(self, text_encoder: nn.Module, unet: nn.Module):
        """Hold both parts; their parameter names are prefixed `text_encoder.` and `unet.`."""
        super().__init__()
        self.text_encoder = text_encoder
        self.unet = unet

    def forward(
        self, input_ids: torch.Tensor, noisy_latents: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """The UNet's prediction (noise or velocity) conditioned on the prompts' tokens."""
        hidden = self.text_encoder(input_ids, return_dict=False)[0]
        return self.unet(noisy_latents, timesteps, hidden, return_dict=False)[0]


def tokenize(tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """Token ids padded to the tokenizer's 77 positions."""
    return tokenizer(
        prompts,
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
