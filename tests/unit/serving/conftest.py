"""Engine fixture for the serving unit tests (no Ray, no MLflow: a folder source).

`folder_source`, `make_job`, `build_engine` and `png_pixels` are shared with the
mixed-batching tests (tests/fixtures/serving.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.serving import FolderAdapterSource, build_engine


@pytest.fixture(scope="module")
def engine(
    tiny_model_dir: Path,
    folder_source: FolderAdapterSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """A ServingEngine on the tiny model with an adapter LRU of 3 and slot rank 8."""
    return build_engine(tiny_model_dir, folder_source, tmp_path_factory.mktemp("engine-cache"), 3)
