"""SD 1.5's real architecture with random weights, as a diffusers folder and a single file.

`build_sd15_random(path, seed)` writes SD 1.5's published architecture (`tuneforge.assets.
sd15.SD15`) with seeded random weights as a diffusers folder (safetensors only): the
stand-in for the real weights at real size (about 4 GB). `write_single_file(folder, file)`
converts any SD-1.x-shaped diffusers folder (the tiny model included) into one
original-layout `.safetensors` checkpoint, the form A1111 and ComfyUI read
(`tuneforge.sd15_keys`). Nothing is downloaded; torch and diffusers are imported inside
the functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.assets.fs import publish_dir, staging_dir
from tuneforge.assets.sd15 import SD15, SD15_UNET_PARAMETERS, Architecture, write_config_folder
from tuneforge.assets.tiny_model import library_versions
from tuneforge.sd15_keys import (
    TEXT_ENCODER_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    UnetLayout,
    VaeLayout,
    text_encoder_original_name,
)

SD15_RANDOM_MARKER = "tuneforge-sd15-random.json"
"""Marker file written at the root of the folder."""
_WEIGHT_FILES = {
    "unet": "diffusion_pytorch_model.safetensors",
    "vae": "diffusion_pytorch_model.safetensors",
    "text_encoder": "model.safetensors",
}


def build_sd15_random(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    single_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    architecture: Architecture = SD15,
) -> Path:
    """Write SD 1.5's architecture with random weights to `path` (and `single_file`, if given).

    The same seed gives the same weights. The folder is built beside `path` and renamed
    into place. Raises FileExistsError when `path` is not empty (unless `overwrite`) or
    `single_file` exists (unless `overwrite`); AssertionError when the SD 1.5 UNet does
    not have its published parameter count.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    target = Path(path)
    if single_file is not None and Path(single_file).exists() and not overwrite:
        raise FileExistsError(f"{single_file} exists; choose another file or pass overwrite")
    with staging_dir(target, overwrite=overwrite) as staging:
        _write_random(staging, seed, architecture)
        publish_dir(staging, target, overwrite=overwrite)
    if single_file is not None:
        write_single_file(target, single_file)
    return target


def _write_random(root: Path, seed: int, architecture: Architecture) -> None:
    """Configs and tokenizer first, then each model built from its config and saved."""
    import importlib

    import torch

    diffusers: Any = importlib.import_module("diffusers")
    from transformers import CLIPTextConfig, CLIPTextModel

    write_config_folder(root, architecture)
    parameters: dict[str, int] = {}
    builders: dict[str, Callable[[], Any]] = {
        "unet": lambda: diffusers.UNet2DConditionModel.from_config(architecture.unet),
        "vae": lambda: diffusers.AutoencoderKL.from_config(architecture.vae),
        "text_encoder": lambda: CLIPTextModel(CLIPTextConfig(**architecture.text_encoder)),
    }
    for offset, (component, build) in enumerate(builders.items()):
        torch.manual_seed(seed + offset)
        model = build()
        parameters[component] = sum(p.numel() for p in model.parameters())
        model.save_pretrained(str(root / component), safe_serialization=True)
        del model
    if architecture is SD15:
        assert parameters["unet"] == SD15_UNET_PARAMETERS, (
            f"SD 1.5 UNet has {parameters['unet']:,} parameters, "
            f"published {SD15_UNET_PARAMETERS:,}: the diffusers version changed the layout"
        )
    marker = {
        "kind": f"tuneforge-random-{architecture.name}",
        "description": (
            f"{architecture.name} architecture with random weights (images are noise), "
            "built by tuneforge.assets.build_sd15_random; no weights were downloaded."
        ),
        "seed": seed,
        "parameters": parameters,
        "built_with": library_versions(),
    }
    (root / SD15_RANDOM_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def original_state_dict(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The UNet, VAE and text encoder of diffusers folder `model_dir` under original names."""
    from safetensors.torch import load_file

    root = Path(model_dir)
    unet_layout = UnetLayout.from_config(json.loads((root / "unet/config.json").read_text()))
    vae_layout = VaeLayout.from_config(json.loads((root / "vae/config.json").read_text()))
    converted: dict[str, Any] = {}

    def add(component: str, prefix: str, rename: Any) -> None:
        for name, tensor in load_file(str(root / component / _WEIGHT_FILES[component])).items():
            original = rename(name)
            value = tensor
            if component == "vae" and VaeLayout.is_conv_in_original(original):
                value = tensor.reshape(*tensor.shape, 1, 1)
            key = prefix + original
            if key in converted:
                raise ValueError(f"two {component} tensors map to {key!r}")
            converted[key] = value.contiguous()

    add("unet", UNET_PREFIX, unet_layout.original_name)
    add("vae", VAE_PREFIX, vae_layout.original_name)
    add("text_encoder", TEXT_ENCODER_PREFIX, text_encoder_original_name)
    return converted


def write_single_file(model_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write diffusers folder `model_dir` as one original-layout `.safetensors` checkpoint."""
    from safetensors.torch import save_file

    target = Path(out)
    if target.suffix != ".safetensors":
        raise ValueError(f"{target}: a single-file checkpoint must end in .safetensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    save_file(original_state_dict(model_dir), str(partial), metadata={"format": "pt"})
    os.replace(partial, target)
    return target
