"""Folder helpers for asset builders: build beside the target, then rename into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
