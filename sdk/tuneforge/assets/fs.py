"""Helpers for asset builders: build beside the target, rename into place, save quietly."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def is_nonempty_dir(path: Path) -> bool:
    """True when `path` is a folder with at least one entry."""
    return path.is_dir() and any(path.iterdir())


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a target that is a file, or a non-empty folder unless `overwrite`."""
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder; choose another path")
    if is_nonempty_dir(target) and not overwrite:
        raise FileExistsError(
            f"{target} is not empty; choose an empty or new folder, or pass overwrite=True "
            "(CLI: --force) to replace it"
        )


@contextmanager
def staging_dir(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A fresh folder beside `target` (same filesystem, so a rename is atomic).

    Removed on exit unless it was published. Checks `target` before any work is done.
    """
    check_target(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish_dir(staging: Path, target: Path, *, overwrite: bool) -> None:
    """Move a finished `staging` folder to `target` with one rename.

    An empty `target` folder is replaced; a non-empty one only with `overwrite` (it is
    moved aside first, then deleted). Raises `FileExistsError` when another writer
    published `target` in the meantime and `overwrite` is false.
    """
    os.chmod(staging, 0o755)
    if is_nonempty_dir(target):
        if not overwrite:
            raise FileExistsError(f"{target} was written by someone else meanwhile")
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError as exc:
        if is_nonempty_dir(target):
            raise FileExistsError(f"{target} was written by someone else meanwhile") from exc
        raise


@contextmanager
def quiet_build() -> Iterator[None]:
    """A model build without third-party lines a user cannot act on (each restored after).

    - transformers' "Writing model shards" bar, shown when saving even one tiny file, and
      diffusers' bars: off (the builders report their own progress).
    - Importing transformers' models imports accelerate, which imports DeepSpeed, which logs
      "Setting accelerator to CPU. If you have GPU ... we were unable to detect it" when it
      has to guess. Where torch sees no CUDA device, `DS_ACCELERATOR=cpu` says it for
      DeepSpeed (the builders compute on the CPU); the variable is removed again after, so
      nothing this process starts later inherits it.
    """
    import importlib

    import torch

    set_accelerator = "DS_ACCELERATOR" not in os.environ and torch.cuda.device_count() == 0
    if set_accelerator:
        os.environ["DS_ACCELERATOR"] = "cpu"
    diffusers_logging: Any = importlib.import_module("diffusers.utils.logging")
    transformers_logging: Any = importlib.import_module("transformers.utils.logging")
    diffusers_on = diffusers_logging.is_progress_bar_enabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if set_accelerator:
            os.environ.pop("DS_ACCELERATOR", None)
        if diffusers_on:
            diffusers_logging.enable_progress_bar()
        if transformers_on:
            transformers_logging.enable_progress_bar()
