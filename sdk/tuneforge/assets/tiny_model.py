"""A tiny, randomly initialised, SD-1.5-shaped diffusers pipeline for tests and demos.

`build_tiny_model(path)` writes a folder that `StableDiffusionPipeline.from_pretrained(path)`
loads offline: the SD 1.5 block layout (UNet, four-level VAE, CLIP text encoder, CLIP
tokenizer, PNDM scheduler with SD's betas) at widths that run in a fraction of a second on
one CPU thread. The weights are random, so images are noise; the shapes, configs, file
names and code paths are SD 1.5's. See docs/assets.md and ../shared/TINY-MODEL.md.

torch, diffusers and transformers are imported inside the functions so that importing
`tuneforge` stays light.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tuneforge.assets.clip_bpe import BOS_TOKEN, EOS_TOKEN, MODEL_MAX_LENGTH, bpe_dir
from tuneforge.assets.fs import publish_dir, quiet_build, staging_dir

TINY_MODEL_VERSION = 1
"""Bumped whenever the builder's output changes (cache keys include it)."""
TINY_MODEL_MARKER = "tuneforge-tiny.json"
"""Marker file written at the root of a tiny model folder."""
TINY_MODEL_RESOLUTION = 64
"""Native image size: the UNet's sample size (8) times the VAE's downscale factor (8)."""
NORM_NUM_GROUPS = 8
"""Group-norm groups: 32 leaves 1-2 values per group at the 1x1 bottom level (TINY-MODEL.md)."""

UNET_CONFIG: dict[str, Any] = {
    "sample_size": TINY_MODEL_RESOLUTION // 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "block_out_channels": (32, 32, 64, 64),
    "layers_per_block": 2,
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": NORM_NUM_GROUPS,
}
VAE_CONFIG: dict[str, Any] = {
    "sample_size": TINY_MODEL_RESOLUTION,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": NORM_NUM_GROUPS,
    "scaling_factor": 0.18215,
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": MODEL_MAX_LENGTH,
    "hidden_act": "quick_gelu",
}
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def build_tiny_model(
    path: str | os.PathLike[str], seed: int = 0, *, overwrite: bool = False
) -> Path:
    """Write a tiny SD-1.5-shaped diffusers pipeline folder to `path` and return it.

    The same `seed` gives byte-identical weight files; different seeds give different
    weights. The folder is assembled in a sibling staging folder and renamed into place, so
    a reader never sees half a model. Raises `FileExistsError` when `path` exists and is not
    empty, unless `overwrite` is true (the old folder is then replaced).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    target = Path(path)
    with staging_dir(target, overwrite=overwrite) as staging, quiet_build():
        _write_pipeline(staging, seed)
        publish_dir(staging, target, overwrite=overwrite)
    return target


def load_tiny_tokenizer(model_max_length: int = MODEL_MAX_LENGTH) -> Any:
    """Load the packaged truncated CLIP BPE as a transformers `CLIPTokenizer`."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(bpe_dir()), model_max_length=model_max_length)


def tiny_model_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the marker of a tiny model folder, or None when `path` holds none."""
    marker = Path(path) / TINY_MODEL_MARKER
    if not marker.is_file():
        return None
    info: dict[str, Any] = json.loads(marker.read_text())
    return info


def _write_pipeline(root: Path, seed: int) -> None:
    """Build every component with seeded random weights and save them under `root`."""
    save_pipeline(root, random_pipeline(seed), seed)


def random_pipeline(seed: int) -> Any:
    """The tiny `StableDiffusionPipeline` with seeded random weights, in memory."""
    import importlib

    import torch

    # diffusers ships no usable type information: treat it as Any.
    diffusers: Any = importlib.import_module("diffusers")
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = load_tiny_tokenizer()
    text_config = CLIPTextConfig(
        **TEXT_CONFIG,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS_TOKEN),
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        pad_token_id=tokenizer.pad_token_id,
    )
    # One generator state per component, so changing one component's shape leaves the
    # others' weights unchanged.
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(**UNET_CONFIG)
    torch.manual_seed(seed + 1)
    vae = diffusers.AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(text_config)
    return diffusers.StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=diffusers.PNDMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(root: Path, pipeline: Any, seed: int) -> None:
    """Save `pipeline` (safetensors), the BPE files and the marker under `root`."""
    pipeline.save_pretrained(str(root), safe_serialization=True)
    # Ship the BPE files too, as SD 1.5's tokenizer folder does (older readers need them).
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(bpe_dir() / name, root / "tokenizer" / name)
    parameters = {
        name: sum(p.numel() for p in getattr(pipeline, name).parameters())
        for name in ("unet", "vae", "text_encoder")
    }
    _write_marker(root, seed, parameters, vocab_size=len(pipeline.tokenizer))


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose code decides the weight bytes (recorded in the marker)."""
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "diffusers", "transformers", "safetensors")}


def _write_marker(root: Path, seed: int, parameters: dict[str, int], vocab_size: int) -> None:
    """Write `tuneforge-tiny.json`: what this folder is and how it was made."""
    marker = {
        "built_with": library_versions(),
        "kind": "tuneforge-tiny-sd15",
        "description": (
            "Tiny Stable-Diffusion-1.5-shaped pipeline with random weights, for tests and "
            "demos only (images are noise). Built by tuneforge.assets.build_tiny_model."
        ),
        "builder_version": TINY_MODEL_VERSION,
        "seed": seed,
        "resolution": TINY_MODEL_RESOLUTION,
        "parameters": parameters,
        "tokenizer": {
            "source": "OpenAI CLIP BPE (open_clip bpe_simple_vocab_16e6), first 1000 merges",
            "vocab_size": vocab_size,
            "model_max_length": MODEL_MAX_LENGTH,
            "license": "MIT",
        },
    }
    (root / TINY_MODEL_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
