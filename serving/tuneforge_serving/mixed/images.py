"""Image and response helpers shared by the mixed runner (same encoding as the engine's)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from tuneforge_serving.adapter_store import StagedAdapter


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as 8-bit pixels (round half to even, like the engine)."""
    return (image * 255).round().clip(0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG encoding of 8-bit pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def adapter_info(staged: StagedAdapter, weight: float) -> dict[str, Any]:
    """An adapter as a response reports it (the engine's `_adapter_info` fields)."""
    return {
        "name": staged.key.name,
        "version": staged.key.version,
        "weight": weight,
        "method": staged.manifest.method,
        "tokens": sorted(staged.embeddings.vectors) if staged.embeddings else [],
    }
