"""A per-user cache of built tiny assets, shared by test runs, benchmarks and the demo.

Folders are keyed by builder version and arguments (e.g. `tiny-model-v1-seed0`), built
once and reused. Concurrent builders are safe: each builds in its own staging folder and
publishes it with one rename; the loser of a race discards its copy and uses the winner's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.assets.demo_subject import (
    DEMO_SUBJECT_COUNT,
    DEMO_SUBJECT_KIND,
    DEMO_SUBJECT_VERSION,
    build_demo_subject,
)
from tuneforge.assets.tiny_dataset import (
    TINY_DATASET_VERSION,
    build_tiny_dataset,
    tiny_dataset_info,
)
from tuneforge.assets.tiny_model import TINY_MODEL_VERSION, build_tiny_model, tiny_model_info
from tuneforge.assets.tiny_pretrained import (
    DEFAULT_STEPS,
    PRETRAINED_KIND,
    TINY_PRETRAINED_VERSION,
    build_tiny_pretrained,
)
from tuneforge.settings import Settings

CACHE_ENV = "TUNEFORGE_ASSETS_CACHE"
"""Environment variable that overrides the cache folder (read by `Settings.assets_cache`)."""


def assets_cache_dir(settings: Settings | None = None) -> Path:
    """`$TUNEFORGE_ASSETS_CACHE`, else `$XDG_CACHE_HOME/tuneforge/assets`, else `~/.cache/...`."""
    return (settings or Settings()).assets_cache_dir()


def cached_tiny_model(seed: int = 0, cache_dir: Path | None = None) -> Path:
    """The tiny model for `seed`, built into the cache on first use."""
    target = (cache_dir or assets_cache_dir()) / f"tiny-model-v{TINY_MODEL_VERSION}-seed{seed}"

    def valid() -> bool:
        info = tiny_model_info(target)
        return info is not None and info.get("builder_version") == TINY_MODEL_VERSION

    return _cached(
        target, valid, lambda overwrite: build_tiny_model(target, seed=seed, overwrite=overwrite)
    )


def cached_tiny_dataset(
    resolution: int = 64,
    num_instance: int = 6,
    num_class: int = 6,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> Path:
    """The tiny dataset for these arguments, built into the cache on first use."""
    name = (
        f"tiny-dataset-v{TINY_DATASET_VERSION}-r{resolution}-i{num_instance}"
        f"-c{num_class}-seed{seed}"
    )
    target = (cache_dir or assets_cache_dir()) / name

    def valid() -> bool:
        info = tiny_dataset_info(target)
        return info is not None and info.get("builder_version") == TINY_DATASET_VERSION

    return _cached(
        target,
        valid,
        lambda overwrite: build_tiny_dataset(
            target,
            resolution=resolution,
            num_instance=num_instance,
            num_class=num_class,
            seed=seed,
            overwrite=overwrite,
        ),
    )


HELDOUT_SEED = 1
"""The seed of the held-out subject images (the training set is seed 0)."""
HELDOUT_NUM_INSTANCE = 8
"""Held-out subject images: 6 like the training poses, 2 new pose/position combinations."""


def cached_heldout_subject(resolution: int = 64, cache_dir: Path | None = None) -> Path:
    """Subject images that no training run sees, for learning tests and evaluation.

    The same subject sprite as `cached_tiny_dataset()` drawn by the same builder with
    another seed (`HELDOUT_SEED`): other background colours and styles, other jitter, and
    with `HELDOUT_NUM_INSTANCE` = 8 two pose/position/size combinations the 6 training
    images lack. No class images. Cached like the other assets
    (`tiny-dataset-v<N>-r64-i8-c0-seed1`); the training dataset's bytes are unchanged.
    """
    return cached_tiny_dataset(
        resolution=resolution,
        num_instance=HELDOUT_NUM_INSTANCE,
        num_class=0,
        seed=HELDOUT_SEED,
        cache_dir=cache_dir,
    )


def _cached(target: Path, valid: Callable[[], bool], build: Callable[[bool], object]) -> Path:
    """`target` when `valid()`, else built by `build(overwrite)`; a lost race uses the winner's."""
    if valid():
        return target
    try:
        # A folder without a valid marker is debris from an older layout: replace it.
        build(target.exists())
    except FileExistsError:
        if not valid():
            raise
    return target


def _marked(info: dict[str, Any] | None, kind: str, version: int) -> bool:
    """Whether a folder's marker says it is `kind`, built by builder `version`."""
    return info is not None and info.get("kind") == kind and info.get("builder_version") == version


def cached_tiny_pretrained(
    seed: int = 0, steps: int = DEFAULT_STEPS, cache_dir: Path | None = None
) -> Path:
    """The demo's base: the tiny model pretrained on generic shapes, built on first use.

    `tiny-pretrained-v<N>-s<steps>-seed<seed>`; the first build trains for a minute or two
    on two threads (docs/assets.md has the measured time). See `tuneforge.assets.tiny_pretrained`.
    """
    name = f"tiny-pretrained-v{TINY_PRETRAINED_VERSION}-s{steps}-seed{seed}"
    target = (cache_dir or assets_cache_dir()) / name

    def valid() -> bool:
        return _marked(tiny_model_info(target), PRETRAINED_KIND, TINY_PRETRAINED_VERSION)

    return _cached(
        target,
        valid,
        lambda overwrite: build_tiny_pretrained(
            target, seed=seed, steps=steps, overwrite=overwrite
        ),
    )


def cached_demo_subject(
    count: int = DEMO_SUBJECT_COUNT, seed: int = 0, cache_dir: Path | None = None
) -> Path:
    """The demo's close-up subject photos (`tuneforge.assets.demo_subject`), built on first use."""
    target = (cache_dir or assets_cache_dir()) / (
        f"demo-subject-v{DEMO_SUBJECT_VERSION}-n{count}-seed{seed}"
    )

    def valid() -> bool:
        return _marked(tiny_dataset_info(target), DEMO_SUBJECT_KIND, DEMO_SUBJECT_VERSION)

    return _cached(
        target,
        valid,
        lambda overwrite: build_demo_subject(target, count=count, seed=seed, overwrite=overwrite),
    )
