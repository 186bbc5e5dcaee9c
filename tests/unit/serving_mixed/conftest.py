"""Fixtures for the mixed-batching tests: an engine on the tiny model over a folder source.

The folder source (tests/fixtures/serving.py, with `make_job`, `build_engine` and
`png_pixels`) stands in for the MLflow registry only; the engine, slots, pipeline and
peft layers are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.serving import FolderAdapterSource, build_engine


@pytest.fixture(scope="module")
def mixed_engine(
    tiny_model_dir: Path,
    folder_source: FolderAdapterSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """A ServingEngine with 4 slots (so 8 adapters force evictions and batch splits)."""
    return build_engine(tiny_model_dir, folder_source, tmp_path_factory.mktemp("mixed-cache"), 4)


@pytest.fixture(scope="module")
def mixed_runner(mixed_engine: Any) -> Any:
    """The mixed batch runner on `mixed_engine` (combines up to 2 LoRAs per request)."""
    from tuneforge_serving.mixed import MixedBatchingConfig, MixedBatchRunner

    return MixedBatchRunner(mixed_engine, MixedBatchingConfig(max_combined_loras=2))
