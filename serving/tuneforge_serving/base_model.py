"""Locate and load the base model once per replica: a diffusers folder or a single file.

Both forms may be local, `s3://` or `hf://` (`tuneforge.base_model` resolves them, the same
resolver the trainer uses, so fingerprints agree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneforge.assets.sd15 import single_file_config_dir
from tuneforge.base_model import ResolvedBaseModel, resolve_base_model
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


def locate_base_model(
    uri: str,
    cache_dir: Path,
    settings: Settings | None = None,
    *,
    revision: str | None = None,
    variant: str | None = None,
) -> ResolvedBaseModel:
    """The base model `uri` names on local disk (`tuneforge.base_model.resolve_base_model`).

    `hf://` fetches only the files the pipeline loads, at `revision` (or `@rev` in the URI);
    pickled checkpoints are refused before any download.
    """
    return resolve_base_model(
        uri,
        cache_dir / "base-models",
        settings or Settings(),
        revision=revision,
        variant=variant,
    )


def load_pipeline(base: ResolvedBaseModel, device: str, dtype: torch.dtype) -> Any:
    """A StableDiffusionPipeline from safetensors only, without the safety checker.

    A single-file checkpoint loads with diffusers' `from_single_file` and the packaged
    config of its architecture, offline.
    """
    from diffusers import StableDiffusionPipeline

    common: dict[str, Any] = {
        "dtype": dtype,
        "safety_checker": None,
        "requires_safety_checker": False,
    }
    if base.single_file:
        pipe = StableDiffusionPipeline.from_single_file(
            str(base.path),
            config=str(single_file_config_dir(base.path)),
            local_files_only=True,
            **common,
        )
    else:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(base.path), use_safetensors=True, variant=base.variant, **common
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
