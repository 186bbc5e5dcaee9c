"""Plain image measures the demo prints and its tests check (numpy + PIL only).

- `layout_distance(image, references)`: how far an image is from the nearest of some
  reference photos, compared at the 8x8 colour layout the tiny model draws (each 8x8 pixel
  block's mean colour; `pooling_vae`): the mean absolute difference of those colours in
  [0, 1], so 0 = the same layout, about 0.25 = the demo base's images against the subject
  photos (docs/assets.md). The demo reports it over several seeds, without and with the LoRA.
- `smoothness(image)`: the correlation of horizontally and vertically neighbouring pixel
  values (mean over R, G, B). Pictures of shapes on backgrounds score near 1; the random
  tiny model's noise scores far lower (figures in docs/assets.md).
- `enlarge(png, factor)`: nearest-neighbour enlargement, for looking at 64 px images.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def load_rgb(image: str | Path | bytes | Any) -> Any:
    """An RGB uint8 array (H x W x 3) from a path, PNG bytes, a PIL image or an array."""
    import io

    import numpy as np
    from PIL import Image

    if isinstance(image, (str, Path)):
        image = Image.open(image)
    elif isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    return np.asarray(image, dtype=np.uint8)


LAYOUT = 8
"""Layout size: a 64 px image's 8x8 pixel blocks (the tiny model's latent grid)."""


def colour_layout(image: Any, size: int = LAYOUT) -> Any:
    """The image as a `size` x `size` grid of block-mean colours, floats in [0, 1]."""
    import numpy as np
    from PIL import Image

    pixels = Image.fromarray(load_rgb(image)).resize((size, size), Image.Resampling.BOX)
    return np.asarray(pixels, dtype=np.float64) / 255.0


def layout_distance(image: Any, references: Iterable[Any]) -> float:
    """Mean absolute colour difference of the 8x8 layouts to the nearest reference (0 … 1)."""
    import numpy as np

    layout = colour_layout(image)
    distances = [float(np.abs(layout - colour_layout(r)).mean()) for r in references]
    if not distances:
        raise ValueError("no reference images to measure against")
    return min(distances)


def smoothness(image: Any) -> float:
    """Mean correlation of neighbouring pixels (right and below neighbours, per channel)."""
    import numpy as np

    pixels = load_rgb(image).astype(np.float64)
    values = []
    for channel in range(3):
        plane = pixels[..., channel]
        for a, b in ((plane[:, :-1], plane[:, 1:]), (plane[:-1, :], plane[1:, :])):
            a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
            spread = float(np.sqrt((a * a).sum() * (b * b).sum()))
            values.append(float((a * b).sum()) / spread if spread > 0 else 1.0)
    return float(np.mean(values))


def enlarge(png: bytes, factor: int) -> bytes:
    """The PNG scaled up `factor` times with nearest-neighbour (every pixel a square)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    size = (image.width * factor, image.height * factor)
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()
