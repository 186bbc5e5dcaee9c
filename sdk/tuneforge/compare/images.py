"""The cells of the side-by-side table: one row of images per prompt, as a PNG data: URI.

An evaluation grid logged at step 0 is one row (the base model's images); a later grid holds
the base row above that step's row, so a job's cell is its grid's last row. Images are square
(the job's resolution); rows are scaled down so each image is at most `max_size` pixels.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from tuneforge.errors import ConfigurationError

MIN_SHOWN = 128
"""Rows of smaller images (the tiny test model's 64 px) are shown enlarged to at least this."""


def _image_module() -> Any:
    try:
        from PIL import Image
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            "tuneforge compare reads the logged grids with Pillow, which is not installed: "
            "pip install 'tuneforge[compare]'"
        ) from error
    return Image


def data_uri(png: bytes) -> str:
    """`data:image/png;base64,…` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class Cell:
    """One row of images as a PNG, with the size to show it at (tiny images enlarged)."""

    png: bytes
    width: int
    height: int

    @property
    def shown(self) -> tuple[int, int]:
        """Display size: images under `MIN_SHOWN` pixels high enlarged by a whole factor."""
        factor = max(1, MIN_SHOWN // max(self.height, 1))
        return self.width * factor, self.height * factor


def last_row(grid_png: bytes, row_height: int | None, max_size: int) -> Cell:
    """The grid's last row of images (all of it when `row_height` is unknown), scaled, as PNG."""
    image_module = _image_module()
    with image_module.open(io.BytesIO(grid_png)) as opened:
        grid = opened.convert("RGB")
    height = row_height if row_height and row_height < grid.height else grid.height
    row = grid.crop((0, grid.height - height, grid.width, grid.height))
    if height > max_size:
        scale = max_size / height
        row = row.resize(
            (max(1, round(row.width * scale)), max_size), image_module.Resampling.LANCZOS
        )
    buffer = io.BytesIO()
    row.save(buffer, format="PNG", optimize=True)
    return Cell(buffer.getvalue(), row.width, row.height)


def grid_height(grid_png: bytes) -> int:
    """The pixel height of a PNG grid."""
    with _image_module().open(io.BytesIO(grid_png)) as opened:
        return int(opened.height)
