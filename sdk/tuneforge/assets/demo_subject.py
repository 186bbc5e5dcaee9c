"""The demo's subject photos: the "sks toy" robot in close-up, so it fills most of each image.

The tiny model sees a 64 px image as its 8x8 colour layout (`pooling_vae`). In the tests'
dataset (`tiny_dataset`) the robot covers a small part of mostly-background photos, and a
LoRA trained on them leaves the demo's images where the base put them (measured in
docs/assets.md). Here the robot is drawn large (about two thirds of the frame), upright
within +-12 degrees, on every background colour, so its red body and yellow stripes are what
the photos have in common: what a LoRA can learn in a minute and a person can see.

`build_demo_subject(path)` writes, like `build_tiny_dataset` (and read the same way)::

    PATH/instance/instance-000.png + .txt   "a photo of sks toy, close-up, on a blue background"
    PATH/tuneforge-dataset.json             kind, count, resolution, seed, prompts

Deterministic for a seed (byte-identical PNGs). Needs only PIL and numpy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tuneforge.assets.fs import publish_dir, staging_dir
from tuneforge.assets.tiny_dataset import (
    CLASS_DIR,
    INSTANCE_DIR,
    INSTANCE_PROMPT,
    INSTANCE_TOKEN,
    TINY_DATASET_MARKER,
)

DEMO_SUBJECT_VERSION = 1
"""Bumped whenever the builder's output changes (cache keys include it)."""
DEMO_SUBJECT_KIND = "tuneforge-demo-subject"
DEMO_SUBJECT_COUNT = 8
SCALE = 0.95
"""Sprite height as a fraction of the image (the robot's body is 10/16 of the sprite)."""


def demo_caption(background: str) -> str:
    """A demo photo's caption, e.g. `a photo of sks toy, close-up, on a white background`."""
    return f"{INSTANCE_PROMPT}, close-up, on a {background} background"


def build_demo_subject(
    path: str | os.PathLike[str],
    count: int = DEMO_SUBJECT_COUNT,
    resolution: int = 64,
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> Path:
    """Write `count` close-up subject photos with captions to `path/instance`; return `path`."""
    if count < 1 or seed < 0 or resolution < 16 or resolution % 8:
        raise ValueError(
            f"count must be >= 1, seed >= 0 and resolution a multiple of 8 >= 16; "
            f"got {count}, {seed}, {resolution}"
        )
    target = Path(path)
    with staging_dir(target, overwrite=overwrite) as staging:
        _write(staging, count, resolution, seed)
        publish_dir(staging, target, overwrite=overwrite)
    return target


def _write(root: Path, count: int, resolution: int, seed: int) -> None:
    import numpy as np

    from tuneforge.assets import drawing

    rng = np.random.default_rng(seed)
    size = resolution * drawing.SUPERSAMPLE
    subject = drawing.subject_sprite(size)
    backgrounds = list(drawing.BACKGROUND_COLOURS)
    instance_dir = root / INSTANCE_DIR
    instance_dir.mkdir()
    (root / CLASS_DIR).mkdir()
    for index in range(count):
        background = backgrounds[index % len(backgrounds)]
        style = drawing.BACKGROUND_STYLES[int(rng.integers(len(drawing.BACKGROUND_STYLES)))]
        jitter_x, jitter_y = rng.uniform(-0.06, 0.06, size=2)
        placement = drawing.Placement(
            0.5 + jitter_x,
            0.5 + jitter_y,
            SCALE * rng.uniform(0.92, 1.05),
            rng.uniform(-12, 12),
        )
        canvas = drawing.background(size, drawing.BACKGROUND_COLOURS[background], style, rng)
        image = drawing.downsample(drawing.compose(canvas, subject, placement), resolution)
        stem = instance_dir / f"instance-{index:03d}"
        image.save(stem.with_suffix(".png"), format="PNG", optimize=False)
        stem.with_suffix(".txt").write_text(demo_caption(background) + "\n", encoding="utf-8")
    marker = {
        "kind": DEMO_SUBJECT_KIND,
        "builder_version": DEMO_SUBJECT_VERSION,
        "seed": seed,
        "resolution": resolution,
        "instance_dir": INSTANCE_DIR,
        "class_dir": CLASS_DIR,
        "num_instance": count,
        "num_class": 0,
        "instance_token": INSTANCE_TOKEN,
        "instance_prompt": INSTANCE_PROMPT,
    }
    (root / TINY_DATASET_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
