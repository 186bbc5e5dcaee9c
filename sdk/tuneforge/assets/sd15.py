"""Stable Diffusion 1.5's published configuration, and config-only folders to load checkpoints.

`SD15` holds SD 1.5's numbers (UNet 859,520,964 parameters, CLIP ViT-L/14 text encoder, the
SD VAE, PNDM scheduler, a 77-token CLIP tokenizer); `TINY` the tiny model's. A
single-file checkpoint carries weights but no configuration, so loaders hand diffusers'
`from_single_file` a config folder: `config_dir(architecture)` writes one (configs and
tokenizer, no weights) into the assets cache once. Nothing is downloaded and nothing here
imports torch.

Tokenizers come from the packaged CLIP BPE (`tuneforge.assets.clip_bpe`): SD 1.5 gets
all of OpenAI's merges (ids equal real CLIP's, 49,408 tokens), so a real SD 1.5 checkpoint
reads prompts as it was trained to; the tiny model the first 1,000 merges. The text
encoder's special-token ids follow the tokenizer.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.assets import tiny_model
from tuneforge.assets.clip_bpe import (
    BOS_TOKEN,
    EOS_TOKEN,
    FULL_VOCAB_SIZE,
    MODEL_MAX_LENGTH,
    VOCAB_SIZE,
    bpe_dir,
    write_full_bpe,
)
from tuneforge.assets.fs import publish_dir, staging_dir
from tuneforge.base_fingerprint import single_file_signature
from tuneforge.settings import Settings

CONFIG_VERSION = 2
"""Bumped whenever a written config folder changes (cache folder names include it)."""
SD15_UNET_PARAMETERS = 859_520_964
"""SD 1.5's UNet parameter count (diffusers `UNet2DConditionModel`)."""


@dataclass(frozen=True)
class Architecture:
    """The configs of an SD-1.x-shaped pipeline, and how to recognise its checkpoints."""

    name: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(tiny_model.SCHEDULER_CONFIG))
    full_tokenizer: bool = False
    """True: real CLIP's whole BPE; False: the packaged first 1,000 merges."""

    @property
    def signature(self) -> tuple[int, int]:
        """(UNet `conv_in` output channels, text-encoder width): tells architectures apart."""
        return int(self.unet["block_out_channels"][0]), int(self.text_encoder["hidden_size"])


def _special_ids(vocab_size: int) -> dict[str, int]:
    """`<|startoftext|>` and `<|endoftext|>` are the last two tokens (padding is end-of-text)."""
    return {
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }


SD15 = Architecture(
    name="sd15",
    unet={
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": [
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ],
        "up_block_types": [
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ],
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
        "norm_eps": 1e-05,
        "act_fn": "silu",
        "center_input_sample": False,
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "mid_block_scale_factor": 1,
    },
    vae={
        "sample_size": 512,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "act_fn": "silu",
        "scaling_factor": 0.18215,
    },
    text_encoder={
        "hidden_size": 768,
        "intermediate_size": 3072,
        "projection_dim": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": MODEL_MAX_LENGTH,
        "vocab_size": FULL_VOCAB_SIZE,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05,
        **_special_ids(FULL_VOCAB_SIZE),
    },
    scheduler={**tiny_model.SCHEDULER_CONFIG, "clip_sample": False, "trained_betas": None},
    full_tokenizer=True,
)
"""SD 1.5 as published (`stable-diffusion-v1-5`); the end-of-text id is the tokenizer's
(49407) rather than the legacy 2, so CLIP pools at the right token."""

TINY = Architecture(
    name="tuneforge-tiny",
    unet=dict(tiny_model.UNET_CONFIG),
    vae=dict(tiny_model.VAE_CONFIG),
    text_encoder={**tiny_model.TEXT_CONFIG, "vocab_size": VOCAB_SIZE, **_special_ids(VOCAB_SIZE)},
)
"""The tiny SD-1.5-shaped model `build_tiny_model` writes."""

ARCHITECTURES = (SD15, TINY)


def architecture_for(signature: tuple[int, int]) -> Architecture:
    """The architecture whose `signature` is `signature`; ValueError naming the known ones."""
    for architecture in ARCHITECTURES:
        if architecture.signature == signature:
            return architecture
    known = ", ".join(f"{a.name} {a.signature}" for a in ARCHITECTURES)
    raise ValueError(
        f"not a Stable Diffusion 1.5 checkpoint: UNet width and text-encoder width are "
        f"{signature}, known architectures are {known}; give a diffusers folder instead"
    )


def config_dir(architecture: Architecture, settings: Settings | None = None) -> Path:
    """A config-only diffusers folder for `architecture` in the assets cache (written once)."""
    cache = (settings or Settings()).assets_cache_dir()
    target = cache / f"{architecture.name}-config-v{CONFIG_VERSION}"
    if (target / "model_index.json").is_file():
        return target
    try:
        with staging_dir(target, overwrite=target.exists()) as staging:
            write_config_folder(staging, architecture)
            publish_dir(staging, target, overwrite=target.exists())
    except FileExistsError:
        if not (target / "model_index.json").is_file():
            raise
    return target


def write_config_folder(root: Path, architecture: Architecture) -> None:
    """Write `architecture`'s `model_index.json`, component configs and tokenizer to `root`."""

    def write(relative: str, content: dict[str, Any]) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")

    write(
        "model_index.json",
        {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": [None, None],
            "image_encoder": [None, None],
            "requires_safety_checker": False,
            "safety_checker": [None, None],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )
    write("unet/config.json", {"_class_name": "UNet2DConditionModel", **architecture.unet})
    write("vae/config.json", {"_class_name": "AutoencoderKL", **architecture.vae})
    write(
        "scheduler/scheduler_config.json",
        {"_class_name": "PNDMScheduler", **architecture.scheduler},
    )
    write(
        "text_encoder/config.json",
        {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            **architecture.text_encoder,
        },
    )
    write(
        "tokenizer/tokenizer_config.json",
        {
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": MODEL_MAX_LENGTH,
            "bos_token": BOS_TOKEN,
            "eos_token": EOS_TOKEN,
            "pad_token": EOS_TOKEN,
            "unk_token": EOS_TOKEN,
        },
    )
    if architecture.full_tokenizer:
        write_full_bpe(root / "tokenizer")
        return
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(bpe_dir() / name, root / "tokenizer" / name)


def single_file_config_dir(path: Path, settings: Settings | None = None) -> Path:
    """The config folder for original-layout checkpoint `path`, chosen by its tensor shapes.

    ValueError when the checkpoint matches no known architecture (SD 1.5, the tiny model).
    """
    return config_dir(architecture_for(single_file_signature(path)), settings)
