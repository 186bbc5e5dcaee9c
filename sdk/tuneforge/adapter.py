"""The adapter contract between trainer and serving (`tuneforge-adapter.json`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

ADAPTER_MANIFEST = "tuneforge-adapter.json"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
TI_EMBEDDINGS = "learned_embeds.safetensors"


class AdapterManifest(BaseModel):
    """What an adapter is and what it was trained from; stored beside the weights."""

    model_config = ConfigDict(alias_generator=None, extra="ignore")

    format_version: int = 1
    """Version of this manifest's format."""
    method: str
    """`lora`, `dreambooth` (with exportLora) or `textualInversion`."""
    base_model: str
    """URI of the base model the adapter was trained on."""
    base_model_fingerprint: str | None = None
    """Hash of the base model's config files, to refuse an adapter made for another model."""
    files: list[str] = Field(default_factory=list)
    """Weight files (safetensors only)."""
    rank: int | None = None
    """LoRA rank."""
    alpha: float | None = None
    """LoRA alpha."""
    target_modules: list[str] = Field(default_factory=list)
    """UNet modules with LoRA layers."""
    text_encoder_lora: bool = False
    """Whether the LoRA also covers the text encoder."""
    tokens: list[str] = Field(default_factory=list)
    """Textual-inversion placeholder tokens."""
    steps: int = 0
    """Optimizer steps trained."""
    job_name: str | None = None
    """FineTuneJob name."""
    job_uid: str | None = None
    """FineTuneJob uid (unique across re-creations of the same name)."""


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
