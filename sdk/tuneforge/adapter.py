"""Base-model fingerprints: tell base models apart without reading gigabytes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_FINGERPRINT_FILES = ("unet/config.json", "text_encoder/config.json", "vae/config.json")
_FINGERPRINT_WEIGHTS = (
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
)
_FINGERPRINT_BYTES = 4 * 2**20


def base_model_fingerprint(model_dir: str | os.PathLike[str]) -> str:
    """A short, stable hash that tells base models apart without reading gigabytes.

    Covers the UNet, text-encoder and VAE configs and the first 4 MiB of the UNet weights
    (the safetensors header plus the first tensors), so two checkpoints of the same
    architecture but different weights differ. Missing files are skipped.
    """
    root = Path(model_dir)
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        path = root / name
        if path.is_file():
            config = json.loads(path.read_text())
            config.pop("_name_or_path", None)
            config.pop("_diffusers_version", None)
            config.pop("transformers_version", None)
            digest.update(name.encode() + json.dumps(config, sort_keys=True).encode())
    for name in _FINGERPRINT_WEIGHTS:
        path = root / name
        if path.is_file():
            with path.open("rb") as handle:
                digest.update(name.encode() + handle.read(_FINGERPRINT_BYTES))
            break
    return digest.hexdigest()[:16]
