"""Locate and load the base model once per replica: local folder, `s3://`, or `hf://`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneforge.inputs import HF_SCHEME, materialize
from tuneforge.settings import Settings


def pick_device(requested: str) -> str:
    """`cuda` when asked for or (with `auto`) when a GPU is visible; else `cpu`."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is visible to this replica")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def pick_dtype(requested: str, device: str) -> torch.dtype:
    """float16 on CUDA and float32 on CPU unless a dtype is named."""
    if requested == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        requested
    ]


def locate_base_model(uri: str, cache_dir: Path, settings: Settings | None = None) -> str:
    """A path or repo id `from_pretrained` can open for `uri` (downloading s3:// once).

    `hf://org/name` is handed to diffusers as the repo id, which fetches only the files the
    pipeline loads; local folders and `s3://` go through `tuneforge.inputs.materialize`.
    """
    if uri.startswith(HF_SCHEME):
        return uri.removeprefix(HF_SCHEME)
    path = materialize(uri, cache_dir / "base-models", settings or Settings())
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"base_model {uri!r} is not a diffusers folder (no model_index.json); "
            "give a local diffusers folder, s3://bucket/prefix or hf://org/name"
        )
    return str(path)


def load_pipeline(location: str, device: str, dtype: torch.dtype) -> Any:
    """A StableDiffusionPipeline from safetensors only, without the safety checker."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        location,
        dtype=dtype,
        use_safetensors=True,
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pin_execution_device(pipe, device)


def pin_execution_device(pipe: Any, device: str) -> Any:
    """Answer `_execution_device` without walking every module on each call.

    diffusers looks for offloading hooks over all sub-modules on every pipeline call
    (~40 ms on the tiny model once the LoRA slots are injected); a serving pipeline is
    never offloaded, so the device is fixed. The pipeline's class is swapped for a
    subclass with the same name that only overrides that property.
    """
    base = type(pipe)
    if getattr(base, "_tuneforge_pinned", False):
        return pipe
    fixed = torch.device(device)
    pinned = type(
        base.__name__,
        (base,),
        {
            "_tuneforge_pinned": True,
            "_execution_device": property(lambda self: fixed),
            "__module__": base.__module__,
        },
    )
    pipe.__class__ = pinned
    return pipe
