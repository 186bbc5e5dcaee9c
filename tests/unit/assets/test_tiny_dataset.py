"""The synthetic subject set: images + captions, right size, deterministic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuneforge.assets import (
    CLASS_PROMPT,
    INSTANCE_PROMPT,
    build_tiny_dataset,
    tiny_dataset_info,
)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_default_dataset_has_captioned_images(tiny_dataset_dir: Path) -> None:
    for folder, prompt in (("instance", INSTANCE_PROMPT), ("class", CLASS_PROMPT)):
        images = sorted((tiny_dataset_dir / folder).glob("*.png"))
        assert len(images) == 6, folder
        for image_path in images:
            with Image.open(image_path) as image:
                assert image.size == (64, 64) and image.mode == "RGB"
            caption = image_path.with_suffix(".txt").read_text(encoding="utf-8").strip()
            assert caption.startswith(prompt + ", "), caption
            assert "background" in caption
    info = tiny_dataset_info(tiny_dataset_dir)
    assert info is not None
    assert info["instance_prompt"] == "a photo of sks toy"
    assert info["class_prompt"] == "a photo of a toy"


def test_images_differ_and_show_the_subject(tiny_dataset_dir: Path) -> None:
    arrays = [
        np.asarray(Image.open(p), dtype=np.float32)
        for p in sorted((tiny_dataset_dir / "instance").glob("*.png"))
    ]
    for first in range(len(arrays)):
        for second in range(first + 1, len(arrays)):
            assert np.abs(arrays[first] - arrays[second]).mean() > 5.0

    # The toy's red body is in every instance image and in no class image.
    def red_fraction(array: np.ndarray) -> float:
        r, g, b = array[..., 0], array[..., 1], array[..., 2]
        return float(((r > 170) & (g < 90) & (b < 90)).mean())

    assert min(red_fraction(a) for a in arrays) > 0.03
    class_arrays = [
        np.asarray(Image.open(p), dtype=np.float32)
        for p in sorted((tiny_dataset_dir / "class").glob("*.png"))
    ]
    assert max(red_fraction(a) for a in class_arrays) < 0.01
    captions = {p.read_text() for p in (tiny_dataset_dir / "instance").glob("*.txt")}
    assert len(captions) == 6


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = build_tiny_dataset(tmp_path / "a", resolution=32, num_instance=3, num_class=2)
    second = build_tiny_dataset(tmp_path / "b", resolution=32, num_instance=3, num_class=2)
    other = build_tiny_dataset(tmp_path / "c", resolution=32, num_instance=3, num_class=2, seed=1)
    assert _digests(first) == _digests(second)
    assert _digests(other) != _digests(first)
    with Image.open(first / "instance" / "instance-000.png") as image:
        assert image.size == (32, 32)
    assert len(list((first / "class").glob("*.png"))) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"resolution": 60}, "resolution"),
        ({"resolution": 8}, "resolution"),
        ({"num_instance": 0}, "num_instance"),
        ({"num_class": -1}, "num_class"),
        ({"seed": -1}, "seed"),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build_tiny_dataset(tmp_path / "d", **kwargs)
    assert not (tmp_path / "d").exists()


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    target = build_tiny_dataset(tmp_path / "d", resolution=16, num_instance=1, num_class=0)
    with pytest.raises(FileExistsError, match="not empty"):
        build_tiny_dataset(target, resolution=16, num_instance=1, num_class=0)
    build_tiny_dataset(target, resolution=16, num_instance=2, num_class=0, overwrite=True)
    assert len(list((target / "instance").glob("*.png"))) == 2
