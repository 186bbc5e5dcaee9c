"""Caption files: each `.txt` must caption an image; one that captions none is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuneforge_trainer.data import orphan_captions, read_records
from tuneforge_trainer.errors import InvalidTrainingInput


def _image(path: Path) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("photo-1", "photo-2"):
        _image(tmp_path / f"{name}.png")
    (tmp_path / "photo-1.txt").write_text("a photo of sks toy on a table\n")
    return tmp_path


def test_matching_captions_are_read(folder: Path) -> None:
    records = read_records(folder)
    assert [(r.path.name, r.caption) for r in records] == [
        ("photo-1.png", "a photo of sks toy on a table"),
        ("photo-2.png", None),
    ]
    assert orphan_captions(folder) == []


def test_a_misspelt_caption_name_is_refused_naming_the_file(folder: Path) -> None:
    (folder / "photo_2.txt").write_text("a photo of sks toy in a garden\n")
    with pytest.raises(InvalidTrainingInput) as raised:
        read_records(folder)
    message = str(raised.value)
    assert "photo_2.txt" in message and "photo-1.txt" not in message
    assert "rename" in message and "<image name>.txt" in message


def test_a_caption_named_after_the_full_image_name_is_refused(folder: Path) -> None:
    (folder / "photo-2.png.txt").write_text("a caption for the wrong name\n")
    assert orphan_captions(folder) == ["photo-2.png.txt"]
    with pytest.raises(InvalidTrainingInput, match=r"photo-2\.png\.txt"):
        read_records(folder)


def test_a_long_list_of_orphans_is_shortened(tmp_path: Path) -> None:
    for index in range(12):
        (tmp_path / f"orphan-{index:02d}.txt").write_text("x")
    with pytest.raises(InvalidTrainingInput, match=r"12 caption file\(s\).*and 2 more"):
        read_records(tmp_path)
