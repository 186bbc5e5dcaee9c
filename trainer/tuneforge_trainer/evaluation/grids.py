"""One image grid per prompt: the base model's images ("before") above this step's."""

from __future__ import annotations

from typing import Any

from PIL import Image


def prompt_grid(rows: list[list[Any]]) -> Any:
    """Paste rows of equally sized PIL images into one RGB image (row by row, left to right)."""
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError("a grid needs at least one image")
    width, height = rows[0][0].size
    columns = max(len(row) for row in rows)
    grid = Image.new("RGB", (columns * width, len(rows) * height), "white")
    for row_index, row in enumerate(rows):
        for column, image in enumerate(row):
            grid.paste(image.convert("RGB"), (column * width, row_index * height))
    return grid
