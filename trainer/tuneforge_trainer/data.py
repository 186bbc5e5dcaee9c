"""Training images: discovery, captions, inspection and the tensors a step consumes.

A dataset folder holds images (`.png`, `.jpg`, `.jpeg`, `.webp`, `.bmp`); a `<image>.txt`
beside an image is its caption. The tiny-asset layout (`instance/` and `class/`
subfolders) is understood too: `instance/` holds the subject, `class/` the prior images.
Transforms use PIL and numpy only (torchvision must not be installed beside this torch).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tuneforge_trainer.errors import InvalidTrainingInput

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
INSTANCE_SUBDIR = "instance"
CLASS_SUBDIR = "class"


@dataclass(frozen=True)
class ImageRecord:
    """One training image and its caption (None: use the job's prompt)."""

    path: Path
    caption: str | None


@dataclass(frozen=True)
class ImageProblems:
    """What is wrong with the images of one folder."""

    unreadable: list[str]
    too_small: list[str]

    @property
    def ok(self) -> bool:
        """Whether every image can be used."""
        return not self.unreadable and not self.too_small


def instance_root(dataset_dir: Path) -> Path:
    """The folder with the subject images: `instance/` when present, else the folder itself."""
    sub = dataset_dir / INSTANCE_SUBDIR
    return sub if sub.is_dir() else dataset_dir


def bundled_class_root(dataset_dir: Path) -> Path | None:
    """The dataset's own `class/` folder of prior images, if it has one with images."""
    sub = dataset_dir / CLASS_SUBDIR
    return sub if sub.is_dir() and list_images(sub) else None


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
    )


def orphan_captions(folder: Path) -> list[str]:
    """Names of the `.txt` files in `folder` that caption no image (no image shares their stem)."""
    if not folder.is_dir():
        return []
    stems = {path.stem for path in list_images(folder)}
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file()
        and path.suffix.lower() == ".txt"
        and not path.name.startswith(".")
        and path.stem not in stems
    )


def read_records(folder: Path) -> list[ImageRecord]:
    """Every image of `folder` with the caption from its `.txt` file, when there is one.

    InvalidTrainingInput naming every caption file without an image: a misspelt caption
    name would otherwise leave its image on the job's instance prompt without a word.
    """
    orphans = orphan_captions(folder)
    if orphans:
        shown = ", ".join(orphans[:10]) + (
            f" and {len(orphans) - 10} more" if len(orphans) > 10 else ""
        )
        raise InvalidTrainingInput(
            f"spec.dataset.uri: {len(orphans)} caption file(s) in {folder.name}/ with no image "
            f"of the same name: {shown}; a caption is <image name>.txt beside its image "
            "(cat.png and cat.txt): rename them to match an image, or remove them"
        )
    records = []
    for path in list_images(folder):
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text().strip() if caption_file.is_file() else None
        records.append(ImageRecord(path=path, caption=caption or None))
    return records


def inspect_images(paths: Sequence[Path], resolution: int) -> ImageProblems:
    """Open every image fully; list those that cannot be decoded or are smaller than needed."""
    unreadable, too_small = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            unreadable.append(f"{path.name} ({type(exc).__name__})")
            continue
        if min(width, height) < resolution:
            too_small.append(f"{path.name} ({width}x{height})")
    return ImageProblems(unreadable=unreadable, too_small=too_small)


def load_pixels(
    path: Path, resolution: int, center_crop: bool, flip: bool, rng: random.Random
) -> torch.Tensor:
    """An image as a CHW float tensor in [-1, 1]: shortest side resized, square crop, flip."""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    if center_crop:
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    else:
        left, top = rng.randint(0, size[0] - resolution), rng.randint(0, size[1] - resolution)
    image = image.crop((left, top, left + resolution, top + resolution))
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@dataclass
class Example:
    """One training example: pixels plus the prompt it is paired with."""

    pixels: torch.Tensor
    prompt: str
    index: int


class ExampleSource:
    """Turns records into examples, deterministically for a seed, step and rank.

    Each rank draws its own disjoint slice of a per-epoch permutation, so the same seed gives
    the same data order on every run and a resumed run continues where it left off.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        prompts: Sequence[str],
        resolution: int,
        center_crop: bool,
        random_flip: bool,
        seed: int,
    ):
        """`prompts[i]` is the prompt for `records[i]`."""
        if not records:
            raise ValueError("no images to train on")
        self.records = list(records)
        self.prompts = list(prompts)
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.seed = seed

    def __len__(self) -> int:
        """Number of images."""
        return len(self.records)

    def order(self, epoch: int) -> list[int]:
        """The permutation of image indices for one epoch."""
        indices = list(range(len(self.records)))
        random.Random(f"{self.seed}-{epoch}").shuffle(indices)
        return indices

    def batches(
        self, batch_size: int, rank: int, world_size: int, skip: int = 0
    ) -> Iterator[list[Example]]:
        """Endless batches for `rank`, skipping the first `skip` batches (resume)."""
        position = 0
        epoch = 0
        while True:
            order = self.order(epoch)
            # Every rank takes batch_size items per global batch; wrap around small datasets.
            per_global = batch_size * world_size
            count = max(1, -(-len(order) // per_global))
            for batch_index in range(count):
                if position < skip:
                    position += 1
                    continue
                start = batch_index * per_global + rank * batch_size
                picks = [order[(start + offset) % len(order)] for offset in range(batch_size)]
                rng = random.Random(f"{self.seed}-{epoch}-{batch_index}-{rank}")
                yield [self.example(index, rng) for index in picks]
                position += 1
            epoch += 1

    def example(self, index: int, rng: random.Random) -> Example:
        """Load one example with this run's transforms."""
        flip = self.random_flip and rng.random() < 0.5
        pixels = load_pixels(self.records[index].path, self.resolution, self.center_crop, flip, rng)
        return Example(pixels=pixels, prompt=self.prompts[index], index=index)

    @property
    def deterministic_pixels(self) -> bool:
        """Whether an image always gives the same pixels (so its latents can be cached)."""
        return self.center_crop and not self.random_flip
