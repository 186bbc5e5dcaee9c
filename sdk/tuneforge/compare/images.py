"""The cells of the side-by-side table: one row of images per prompt, as a data: URI.

An evaluation grid logged at step 0 is one row (the base model's images); a later grid holds
the base row above that step's row, so a job's cell is its grid's last row. Images are square
(the job's resolution); rows are scaled down so each image is at most `max_size` pixels, and
embedded losslessly (PNG) up to `LOSSLESS_MAX` pixels high, as JPEG above (a report of 25
prompts at 256 px is about a third of its PNG size).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from tuneforge.errors import ConfigurationError

MIN_SHOWN = 128
"""Rows of smaller images (the tiny test model's 64 px) are shown enlarged to at least this."""
LOSSLESS_MAX = 128
"""Rows up to this many pixels high are embedded as PNG (exact); larger ones as JPEG."""
JPEG_QUALITY = 90
"""25 prompts x 3 columns of four 256 px (busy, noise-like) images: a 44 MiB page as PNG, 13 MiB
as JPEG; photographs compress further."""


def _image_module() -> Any:
    try:
        from PIL import Image
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            "tuneforge compare reads the logged grids with Pillow, which is not installed: "
            "pip install 'tuneforge[compare]'"
        ) from error
    return Image


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """`data:<mime>;base64,…` of an encoded image."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Cell:
    """One row of images, encoded, with the size to show it at (tiny images enlarged)."""

    data: bytes
    mime: str
    width: int
    height: int

    @property
    def uri(self) -> str:
        """The row as a `data:` URI."""
        return data_uri(self.data, self.mime)

    @property
    def shown(self) -> tuple[int, int]:
        """Display size: images under `MIN_SHOWN` pixels high enlarged by a whole factor."""
        factor = max(1, MIN_SHOWN // max(self.height, 1))
        return self.width * factor, self.height * factor


def encode_row(row: Any) -> Cell:
    """PNG (lossless) up to `LOSSLESS_MAX` pixels high, JPEG quality 90 (4:4:4) above."""
    buffer = io.BytesIO()
    if row.height <= LOSSLESS_MAX:
        row.save(buffer, format="PNG")
        return Cell(buffer.getvalue(), "image/png", row.width, row.height)
    row.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return Cell(buffer.getvalue(), "image/jpeg", row.width, row.height)


def last_row(grid_png: bytes, row_height: int | None, max_size: int) -> Cell:
    """The grid's last row of images (all of it when `row_height` is unknown), scaled, encoded."""
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
    return encode_row(row)


def grid_height(grid_png: bytes) -> int:
    """The pixel height of a PNG grid."""
    with _image_module().open(io.BytesIO(grid_png)) as opened:
        return int(opened.height)
