"""The Stable Diffusion parts a training step needs, and the one module strategies wrap.

`Denoiser` holds the text encoder and the UNet as one `nn.Module` whose forward goes from
token ids and noisy latents to the UNet's prediction. DDP, FSDP2 and DeepSpeed each wrap
this single module, whatever a method trains inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneforge.assets.sd15 import single_file_config_dir
from tuneforge.base_fingerprint import base_model_fingerprint
from tuneforge.base_model import folder_variant


@dataclass
class Components:
    """Tokenizer, text encoder, VAE, UNet and the training noise scheduler of a base model."""

    model_dir: Path
    """The folder of configs and tokenizer: the diffusers folder, or a single file's config folder."""
    weights: Path
    """What the weights were loaded from: the diffusers folder or the single `.safetensors` file."""
    tokenizer: Any
    text_encoder: nn.Module
    vae: nn.Module
    unet: nn.Module
    noise_scheduler: Any

    @property
    def fingerprint(self) -> str:
        """The base model's fingerprint (see `tuneforge.base_fingerprint`)."""
        return base_model_fingerprint(self.weights)


def config_folder(model_path: Path) -> Path:
    """The folder holding configs and tokenizer: `model_path` itself, or the packaged
    configs of the architecture a single `.safetensors` checkpoint has."""
    return single_file_config_dir(model_path) if model_path.is_file() else model_path


def load_tokenizer(model_path: Path) -> Any:
    """The CLIP tokenizer of a diffusers folder or single file (77 positions, as SD 1.5)."""
    from transformers import CLIPTokenizer

    tokenizer_dir = config_folder(model_path) / "tokenizer"
    return CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=77)


def load_components(model_path: Path) -> Components:
    """Load every part in fp32 from safetensors, frozen; methods unfreeze what they train.

    `model_path` is a diffusers folder (its plain or fp16 weights) or a single original-layout
    `.safetensors` checkpoint, loaded with diffusers' `from_single_file` and the packaged
    config of its architecture (offline).
    """
    from diffusers import DDPMScheduler

    model_dir = config_folder(model_path)
    text_encoder, vae, unet = (
        _single_file_parts(model_path, model_dir)
        if model_path.is_file()
        else _folder_parts(model_path)
    )
    scheduler = DDPMScheduler.from_pretrained(str(model_dir), subfolder="scheduler")
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
        module.to(torch.float32)
    vae.eval()
    return Components(
        model_dir=model_dir,
        weights=model_path,
        tokenizer=load_tokenizer(model_dir),
        text_encoder=text_encoder,
        vae=vae,
        unet=unet,
        noise_scheduler=scheduler,
    )


def _folder_parts(model_dir: Path) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Text encoder, VAE and UNet of a diffusers folder (its fp16 variant when it has only that)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    common: dict[str, Any] = {"use_safetensors": True, "variant": folder_variant(model_dir)}
    text_encoder = CLIPTextModel.from_pretrained(str(model_dir), subfolder="text_encoder", **common)
    vae = AutoencoderKL.from_pretrained(str(model_dir), subfolder="vae", **common)
    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet", **common)
    return text_encoder, vae, unet


def _single_file_parts(path: Path, config_dir: Path) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Text encoder, VAE and UNet of an original-layout checkpoint (diffusers converts them)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_single_file(
        str(path), config=str(config_dir), local_files_only=True
    )
    return pipe.text_encoder, pipe.vae, pipe.unet


def unet_module_names(model_path: Path, cache_dir: Path | None = None) -> dict[str, str]:
    """Every UNet submodule name and its class, from the config alone (no weights read).

    Building the module tree imports diffusers (4 s on the 2-core machine, in a driver that
    needs nothing else from it), so the answer is kept in `cache_dir` (default: beside the
    assets cache, `<cache>/tuneforge/unet-modules`) under a key of the config's bytes and
    the diffusers version that built the tree: the same config answers from the file.
    """
    folder = config_folder(model_path)
    cache = _module_names_file(folder / "unet" / "config.json", cache_dir)
    if cache is not None and cache.is_file():
        try:
            cached: dict[str, str] = json.loads(cache.read_text())
            return cached
        except (OSError, ValueError):
            pass  # unreadable: build it again and rewrite it
    names = _build_module_names(folder)
    if cache is not None:
        _write_atomically(cache, json.dumps(names, sort_keys=True))
    return names


def _build_module_names(folder: Path) -> dict[str, str]:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(str(folder), subfolder="unet")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return {name: type(module).__name__ for name, module in unet.named_modules() if name}


def _module_names_file(config: Path, cache_dir: Path | None) -> Path | None:
    """The cache file for this UNet config, or None when the config cannot be read."""
    from importlib.metadata import version

    from tuneforge.settings import Settings

    try:
        content = config.read_bytes()
    except OSError:
        return None
    key = hashlib.sha256(content + version("diffusers").encode()).hexdigest()[:32]
    root = cache_dir or Settings().assets_cache_dir().parent / "unet-modules"
    return root / f"{key}.json"


def _write_atomically(path: Path, text: str) -> None:
    """Write `path` through a sibling temporary file; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
            handle.write(text)
        os.replace(handle.name, path)
    except OSError:
        return


class Denoiser(nn.Module):
    """Text encoder + UNet: `forward(input_ids, noisy_latents, timesteps) -> prediction`."""

    def __init__(self, text_encoder: nn.Module, unet: nn.Module, *, text_encoder_frozen: bool):
        """Hold both parts; their parameter names are prefixed `text_encoder.` and `unet.`.

        `text_encoder_frozen`: no gradient flows through the text encoder (LoRA or DreamBooth
        on the UNet only), so its forward runs without autograd.
        """
        super().__init__()
        self.text_encoder = text_encoder
        self.unet = unet
        self.text_encoder_frozen = text_encoder_frozen

    def forward(
        self, input_ids: torch.Tensor, noisy_latents: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """The UNet's prediction (noise or velocity) conditioned on the prompts' tokens."""
        hidden = self.encode_prompts(input_ids)
        return self.unet(noisy_latents, timesteps, hidden, return_dict=False)[0]

    def encode_prompts(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The text encoder's hidden states for `input_ids`.

        Both run under the step's autocast, in the job's precision on every device; a frozen
        one (no gradient flows through it) also under `no_grad`.
        """
        if not self.text_encoder_frozen:
            return self.text_encoder(input_ids, return_dict=False)[0]  # type: ignore[no-any-return]
        with torch.no_grad():
            return self.text_encoder(input_ids, return_dict=False)[0]  # type: ignore[no-any-return]


def tokenize(tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """Token ids padded to the tokenizer's 77 positions."""
    return tokenizer(
        prompts,
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
