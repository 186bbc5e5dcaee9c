"""Base-model fingerprints: the same weights give the same hash in every form they come in.

The fingerprint hashes a few canonical tensors of the UNet, VAE and text encoder, read by
name (a diffusers folder under diffusers' names, with or without transformers 4's
`text_model.` prefix; a single-file checkpoint under the original names, mapped by
`tuneforge.sd15_keys`). Each tensor contributes its name, shape and values rounded to
float16, so an fp32 folder, its fp16 variant, an original-layout copy, an S3 copy and a
Hub snapshot of the same weights agree, and different weights differ. Only the needed
bytes are read (a few MB, never gigabytes); numpy only, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.base_model import folder_variant
from tuneforge.sd15_keys import (
    TEXT_ENCODER_PREFIX,
    TEXT_MODEL_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    UnetLayout,
    VaeLayout,
    text_encoder_original_name,
)

_CANONICAL = {
    "unet": (
        "conv_in.weight",
        "time_embedding.linear_1.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight",
        "conv_out.weight",
    ),
    "vae": ("encoder.conv_in.weight", "decoder.conv_out.weight", "post_quant_conv.weight"),
    "text_encoder": (
        "embeddings.position_embedding.weight",
        "encoder.layers.0.self_attn.q_proj.weight",
        "final_layer_norm.weight",
    ),
}
"""Diffusers names of the hashed tensors: none depends on block counts or layers per block."""
_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}


def base_model_fingerprint(path: str | os.PathLike[str]) -> str:
    """A short hash of the base model at `path` (diffusers folder or single `.safetensors`)."""
    root = Path(path)
    digest = hashlib.sha256()
    for component, names in _CANONICAL.items():
        for name in names:
            value = _tensor(root, component, name)
            digest.update(f"{component}/{name}{list(value.shape)}".encode())
            digest.update(value.astype("<f2").tobytes())
    return digest.hexdigest()[:16]


def _tensor(root: Path, component: str, name: str) -> np.ndarray:
    """Canonical tensor `name` of `component`, as float32, from a folder or a single file."""
    if root.is_file():
        return read_tensor(root, _original_name(component, name))
    variant = folder_variant(root)
    stem = {"text_encoder": "model"}.get(component, "diffusion_pytorch_model")
    suffix = f".{variant}.safetensors" if variant else ".safetensors"
    weights = root / component / f"{stem}{suffix}"
    if component == "text_encoder" and name not in read_header(weights):
        name = TEXT_MODEL_PREFIX + name
    return read_tensor(weights, name)


def _original_name(component: str, name: str) -> str:
    if component == "unet":
        return UNET_PREFIX + UnetLayout().original_name(name)
    if component == "vae":
        return VAE_PREFIX + VaeLayout().original_name(name)
    return TEXT_ENCODER_PREFIX + text_encoder_original_name(name)


def read_header(path: Path) -> dict[str, Any]:
    """The tensor entries of a safetensors file's header (`__metadata__` removed)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def read_tensor(path: Path, name: str) -> np.ndarray:
    """Tensor `name` of safetensors file `path` as float32, reading only its bytes.

    KeyError naming the file when the tensor is missing (not an SD 1.x checkpoint).
    """
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        if name not in header:
            raise KeyError(f"{path} has no tensor {name!r}: is it a Stable Diffusion 1.x model?")
        entry = header[name]
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {entry['dtype']}")
        start, end = entry["data_offsets"]
        handle.seek(8 + length + start)
        raw = np.frombuffer(handle.read(end - start), dtype=_DTYPES[entry["dtype"]])
    if entry["dtype"] == "BF16":
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32).reshape(entry["shape"])


def single_file_signature(path: Path) -> tuple[int, int]:
    """(UNet width, text-encoder width) of an original-layout checkpoint, from its header.

    Compared with `tuneforge.assets.sd15.Architecture.signature` to pick the config a
    single file loads with. KeyError when the file is not an SD 1.x checkpoint.
    """
    header = read_header(path)
    conv_in = UNET_PREFIX + UnetLayout().original_name("conv_in.weight")
    positions = TEXT_ENCODER_PREFIX + "embeddings.position_embedding.weight"
    for key in (conv_in, positions):
        if key not in header:
            raise KeyError(
                f"{path} has no tensor {key!r}: is it a Stable Diffusion 1.x checkpoint?"
            )
    return int(header[conv_in]["shape"][0]), int(header[positions]["shape"][1])
