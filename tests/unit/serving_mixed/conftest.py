"""Fixtures for the mixed-batching tests: an engine on the tiny model over a folder source.

The folder source (`tuneforge_serving.folder_source`) stands in for the MLflow registry
only; the engine, slots, pipeline and peft layers are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.serving import FolderAdapterSource, build_engine

MIXED = {"max_batch_size": 4, "max_wait_s": 0.02, "max_combined_loras": 2}


@pytest.fixture(scope="module")
def mixed_engine(
    tiny_model_dir: Path,
    folder_source: FolderAdapterSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """A ServingEngine with mixed batching on and 4 slots (so 8 adapters force evictions
    and batch splits); combines up to 2 LoRAs per request."""
    cache = tmp_path_factory.mktemp("mixed-cache")
    return build_engine(tiny_model_dir, folder_source, cache, 4, mixed_batching=MIXED)
