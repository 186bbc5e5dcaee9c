"""Two plain image measures the demo prints and its test checks (numpy + PIL only).

- `colour_distance(image, references)`: how far an image's colours are from a set of
  reference images' colours: half the L1 distance between their normalised colour
  histograms (4 bins per channel, 64 in all), so 0 = the same colour mix, 1 = no colour in
  common. Position-free on purpose: the tiny model draws 8x8 colour layouts, so "does the
  picture have the subject's colours in the subject's proportions" is what it can show.
- `smoothness(image)`: the correlation of horizontally and vertically neighbouring pixel
  values (mean over R, G, B). Pictures of shapes on backgrounds score near 1; the random
  tiny model's noise scores far lower (figures in docs/assets.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

BINS = 4


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


def colour_histogram(images: Iterable[Any]) -> Any:
    """The normalised joint RGB histogram (BINS^3 entries, summing to 1) of all pixels given."""
    import numpy as np

    counts = np.zeros(BINS**3)
    for image in images:
        pixels = load_rgb(image).reshape(-1, 3).astype(np.int64) * BINS // 256
        index = (pixels[:, 0] * BINS + pixels[:, 1]) * BINS + pixels[:, 2]
        counts += np.bincount(index, minlength=BINS**3)
    total = counts.sum()
    if total == 0:
        raise ValueError("no pixels to measure")
    return counts / total


def colour_distance(image: Any, references: Iterable[Any]) -> float:
    """Total-variation distance between `image`'s colours and the `references`' (0 … 1)."""
    import numpy as np

    return float(0.5 * np.abs(colour_histogram([image]) - colour_histogram(references)).sum())


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
