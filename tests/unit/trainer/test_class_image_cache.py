"""The class-image cache on a local folder: what the key covers and which sets are trusted.

No model here: the "images" are small PNGs written by the test, published with the cache's
own `publish` into the layout a run leaves (`<key>/<run>/generated-NNNNN.png`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuneforge.settings import Settings
from tuneforge_trainer.class_image_cache import MANIFEST, ClassImageCache, ClassImageKey

KEY = ClassImageKey(
    base_fingerprint="0123456789abcdef",
    class_prompt="a photo of a toy",
    resolution=64,
    count=2,
    seed=0,
    steps=25,
    guidance_scale=7.5,
    scheduler={"class": "PNDMScheduler", "config": {"num_train_timesteps": 1000}},
    precision="no",
    device="cpu",
    diffusers="0.42.1",
)
NAMES = ["generated-00000.png", "generated-00001.png"]


@pytest.mark.parametrize(
    "change",
    [
        {"base_fingerprint": "fedcba9876543210"},
        {"class_prompt": "a photo of a cup"},
        {"resolution": 128},
        {"count": 3},
        {"seed": 1},
        {"steps": 30},
        {"guidance_scale": 5.0},
        {"scheduler": {"class": "DDIMScheduler", "config": {"num_train_timesteps": 1000}}},
        {"precision": "fp16"},
        {"device": "cuda"},
        {"diffusers": "0.43.0"},
    ],
)
def test_every_field_that_changes_the_pixels_changes_the_key(change):
    other = KEY.model_copy(update=change)
    assert other.digest() != KEY.digest()
    assert ClassImageKey.model_validate_json(KEY.canonical()).digest() == KEY.digest()


def _published(root: Path, key: ClassImageKey = KEY, names: list[str] = NAMES) -> Path:
    """Images rendered by run `job-a` and uploaded into the cache, then its manifest."""
    cache = ClassImageCache(str(root), key, Settings(home=root))
    folder = root / key.digest() / "job-a"
    folder.mkdir(parents=True)
    for index, name in enumerate(names):
        pixels = np.full((8, 8, 3), 40 * index, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    cache.publish("job-a", folder, names)
    return folder


def _fetch(root: Path, dest: Path, key: ClassImageKey = KEY) -> bool:
    return ClassImageCache(str(root), key, Settings(home=root)).fetch(dest) is not None


def test_a_complete_set_is_fetched_byte_for_byte(tmp_path):
    folder = _published(tmp_path / "root")
    dest = tmp_path / "dest"
    assert _fetch(tmp_path / "root", dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {
        name: (folder / name).read_bytes() for name in NAMES
    }
    assert not _fetch(tmp_path / "root", tmp_path / "other", KEY.model_copy(update={"seed": 1}))


def test_a_set_is_not_trusted_without_its_manifest_or_with_a_changed_file(tmp_path):
    root = tmp_path / "root"
    folder = _published(root)
    manifest = root / KEY.digest() / MANIFEST
    saved = manifest.read_bytes()
    manifest.unlink()
    assert not _fetch(root, tmp_path / "a"), "no manifest: an interrupted upload"
    manifest.write_bytes(saved)
    assert _fetch(root, tmp_path / "b")
    first = folder / NAMES[0]
    original = first.read_bytes()
    first.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, other bytes
    assert not _fetch(root, tmp_path / "c")
    first.unlink()
    assert not _fetch(root, tmp_path / "d"), "a listed file is gone"


def test_a_manifest_listing_fewer_images_than_the_key_counts_is_not_trusted(tmp_path):
    _published(tmp_path / "root", names=NAMES[:1])
    assert not _fetch(tmp_path / "root", tmp_path / "dest")
