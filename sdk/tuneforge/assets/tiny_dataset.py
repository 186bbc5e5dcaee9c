"""A small synthetic DreamBooth-style dataset: one distinctive toy, plus generic class toys.

`build_tiny_dataset(path)` writes::

    PATH/instance/instance-000.png + instance-000.txt   the subject ("sks toy") in several
                                                         poses, positions, sizes, backgrounds
    PATH/class/class-000.png + class-000.txt            other toys (balls, blocks, ...)
    PATH/tuneforge-dataset.json                          prompts, counts, resolution, seed

Each caption says what is in its image, e.g. "a photo of sks toy, rotated left, on a blue
striped background". Deterministic for a seed (byte-identical PNGs). Needs only PIL and numpy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tuneforge.assets.fs import publish_dir, staging_dir

TINY_DATASET_VERSION = 1
"""Bumped whenever the builder's output changes (cache keys include it)."""
TINY_DATASET_MARKER = "tuneforge-dataset.json"
"""Marker file written at the root of a tiny dataset folder."""
INSTANCE_TOKEN = "sks"
"""The rare token that names the subject."""
INSTANCE_PROMPT = f"a photo of {INSTANCE_TOKEN} toy"
"""The DreamBooth instance prompt (every instance caption starts with it)."""
CLASS_PROMPT = "a photo of a toy"
"""The DreamBooth class prompt (every class caption starts with it)."""
INSTANCE_DIR = "instance"
CLASS_DIR = "class"

# (angle in degrees, words); positions as (x, y, words); sizes as (scale, words).
_POSES = (
    (0.0, "upright"),
    (25.0, "rotated left"),
    (-25.0, "rotated right"),
    (180.0, "upside down"),
)
_POSITIONS = (
    (0.5, 0.5, "in the centre"),
    (0.33, 0.55, "on the left"),
    (0.67, 0.45, "on the right"),
)
_SIZES = ((0.62, "close-up"), (0.42, "small"))


def build_tiny_dataset(
    path: str | os.PathLike[str],
    resolution: int = 64,
    num_instance: int = 6,
    num_class: int = 6,
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic subject set and class images to `path` and return it.

    `resolution` must be a multiple of 8 and at least 16; `num_instance` >= 1;
    `num_class` >= 0 (0 writes an empty `class/`). Raises `FileExistsError` when `path`
    is a non-empty folder, unless `overwrite` is true.
    """
    _check_arguments(resolution, num_instance, num_class, seed)
    target = Path(path)
    with staging_dir(target, overwrite=overwrite) as staging:
        _write_dataset(staging, resolution, num_instance, num_class, seed)
        publish_dir(staging, target, overwrite=overwrite)
    return target


def tiny_dataset_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the marker of a tiny dataset folder, or None when `path` holds none."""
    marker = Path(path) / TINY_DATASET_MARKER
    if not marker.is_file():
        return None
    info: dict[str, Any] = json.loads(marker.read_text())
    return info


def _check_arguments(resolution: int, num_instance: int, num_class: int, seed: int) -> None:
    """Reject bad arguments with a message naming the argument and the fix."""
    if resolution < 16 or resolution % 8:
        raise ValueError(f"resolution must be a multiple of 8 and >= 16, got {resolution}")
    if num_instance < 1:
        raise ValueError(f"num_instance must be >= 1, got {num_instance}")
    if num_class < 0:
        raise ValueError(f"num_class must be >= 0, got {num_class}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def _write_dataset(
    root: Path, resolution: int, num_instance: int, num_class: int, seed: int
) -> None:
    """Draw every image and caption into `root`."""
    import numpy as np

    from tuneforge.assets import drawing

    rng = np.random.default_rng(seed)
    canvas_size = resolution * drawing.SUPERSAMPLE
    colours = list(drawing.BACKGROUND_COLOURS)
    instance_dir, class_dir = root / INSTANCE_DIR, root / CLASS_DIR
    instance_dir.mkdir()
    class_dir.mkdir()
    subject = drawing.subject_sprite(canvas_size)
    for index in range(num_instance):
        angle, pose_words = _POSES[index % len(_POSES)]
        x, y, position_words = _POSITIONS[(index // len(_POSES) + index) % len(_POSITIONS)]
        scale, size_words = _SIZES[index % len(_SIZES)]
        colour = colours[int(rng.integers(len(colours)))]
        style = drawing.BACKGROUND_STYLES[int(rng.integers(len(drawing.BACKGROUND_STYLES)))]
        jitter = rng.uniform(-0.04, 0.04, size=2)
        placement = drawing.Placement(
            x + jitter[0], y + jitter[1], scale, angle + rng.uniform(-5, 5)
        )
        canvas = drawing.background(canvas_size, drawing.BACKGROUND_COLOURS[colour], style, rng)
        image = drawing.downsample(drawing.compose(canvas, subject, placement), resolution)
        caption = f"{INSTANCE_PROMPT}, {pose_words}, {size_words}, {position_words}, {_background_words(colour, style)}"
        _save(instance_dir / f"instance-{index:03d}", image, caption)
    class_colours = [str(name) for name in rng.permutation(list(drawing.CLASS_COLOURS))]
    for index in range(num_class):
        shape = drawing.CLASS_SHAPES[index % len(drawing.CLASS_SHAPES)]
        toy_colour = class_colours[index % len(class_colours)]
        colour = colours[int(rng.integers(len(colours)))]
        style = drawing.BACKGROUND_STYLES[int(rng.integers(len(drawing.BACKGROUND_STYLES)))]
        x, y = rng.uniform(0.38, 0.62, size=2)
        placement = drawing.Placement(x, y, rng.uniform(0.4, 0.65), rng.uniform(-30, 30))
        sprite = drawing.class_sprite(canvas_size, shape, drawing.CLASS_COLOURS[toy_colour])
        canvas = drawing.background(canvas_size, drawing.BACKGROUND_COLOURS[colour], style, rng)
        image = drawing.downsample(drawing.compose(canvas, sprite, placement), resolution)
        caption = f"{CLASS_PROMPT}, a {toy_colour} {shape}, {_background_words(colour, style)}"
        _save(class_dir / f"class-{index:03d}", image, caption)
    marker = {
        "kind": "tuneforge-tiny-dataset",
        "builder_version": TINY_DATASET_VERSION,
        "seed": seed,
        "resolution": resolution,
        "instance_dir": INSTANCE_DIR,
        "class_dir": CLASS_DIR,
        "num_instance": num_instance,
        "num_class": num_class,
        "instance_token": INSTANCE_TOKEN,
        "instance_prompt": INSTANCE_PROMPT,
        "class_prompt": CLASS_PROMPT,
    }
    (root / TINY_DATASET_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def _background_words(colour: str, style: str) -> str:
    """Caption words for a background, e.g. "on a blue striped background"."""
    return f"on a {colour} background" if style == "plain" else f"on a {colour} {style} background"


def _save(stem: Path, image: Any, caption: str) -> None:
    """Write `stem.png` (no metadata, so bytes depend only on pixels) and `stem.txt`."""
    image.save(stem.with_suffix(".png"), format="PNG", optimize=False)
    stem.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
