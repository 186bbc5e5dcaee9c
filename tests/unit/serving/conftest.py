"""Engine fixtures for the serving unit tests (no Ray, no MLflow: a folder source)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.serving import FolderAdapterSource


def png_array(data: bytes) -> np.ndarray:
    """A PNG's pixels as float in [0, 1]."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def folder_source(serving_adapters: dict[str, Path]) -> FolderAdapterSource:
    """Every test adapter registered as version 1 of its name."""
    source = FolderAdapterSource()
    for name, folder in serving_adapters.items():
        source.add(name, folder)
    return source


@pytest.fixture(scope="module")
def engine(
    tiny_model_dir: Path,
    folder_source: FolderAdapterSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """A ServingEngine on the tiny model with an adapter LRU of 3 and slot rank 8."""
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine

    config = ServingConfig(
        base_model=str(tiny_model_dir),
        cache_dir=tmp_path_factory.mktemp("engine-cache"),
        adapter_lru_size=3,
        hotswap={"max_lora_rank": 8},
    )
    return ServingEngine(config, folder_source)


@pytest.fixture(scope="module")
def make_job(folder_source: FolderAdapterSource) -> Callable[..., Any]:
    """Build a small GenerationJob: 64x64, 3 steps, seed 11 unless given."""
    from tuneforge_serving.engine import GenerationJob

    def build(adapters: list[tuple[str, float]] | None = None, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "prompt": "a photo of a cat",
            "steps": 3,
            "width": 64,
            "height": 64,
            "seed": 11,
        }
        values.update(overrides)
        resolved = [(folder_source.resolve(n), w) for n, w in (adapters or [])]
        return GenerationJob(adapters=resolved, **values)

    return build
