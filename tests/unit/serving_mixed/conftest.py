"""Fixtures for the mixed-batching tests: an engine on the tiny model over a folder source.

The folder source (tests/fixtures/serving.py) stands in for the MLflow registry only; the
engine, slots, pipeline and peft layers are the real ones.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.serving import FolderAdapterSource


def png_pixels(data: bytes) -> np.ndarray:
    """A PNG's pixels as float in [0, 1]."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def mixed_source(serving_adapters: dict[str, Path]) -> FolderAdapterSource:
    """Every shared test adapter registered as version 1 of its name."""
    source = FolderAdapterSource()
    for name, folder in serving_adapters.items():
        source.add(name, folder)
    return source


def build_engine(model_dir: Path, source: Any, cache_dir: Path, slots: int) -> Any:
    """A ServingEngine on the tiny model with `slots` adapter slots of rank 8."""
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine

    config = ServingConfig(
        base_model=str(model_dir),
        cache_dir=cache_dir,
        adapter_lru_size=slots,
        hotswap={"max_lora_rank": 8},
    )
    return ServingEngine(config, source)


@pytest.fixture(scope="module")
def mixed_engine(
    tiny_model_dir: Path,
    mixed_source: FolderAdapterSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """A ServingEngine with 4 slots (so 8 adapters force evictions and batch splits)."""
    return build_engine(tiny_model_dir, mixed_source, tmp_path_factory.mktemp("mixed-cache"), 4)


@pytest.fixture(scope="module")
def mixed_runner(mixed_engine: Any) -> Any:
    """The mixed batch runner on `mixed_engine` (combines up to 2 LoRAs per request)."""
    from tuneforge_serving.mixed import MixedBatchingConfig, MixedBatchRunner

    return MixedBatchRunner(mixed_engine, MixedBatchingConfig(max_combined_loras=2))


@pytest.fixture(scope="module")
def make_job(mixed_source: FolderAdapterSource) -> Callable[..., Any]:
    """A small GenerationJob: 64x64, 3 steps, guidance 7.5, seed 11 unless given."""
    from tuneforge_serving.jobs import GenerationJob

    def build(adapters: list[tuple[str, float]] | None = None, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "prompt": "a photo of a cat",
            "steps": 3,
            "width": 64,
            "height": 64,
            "seed": 11,
        }
        values.update(overrides)
        resolved = [(mixed_source.resolve(n), w) for n, w in (adapters or [])]
        return GenerationJob(adapters=resolved, **values)

    return build
