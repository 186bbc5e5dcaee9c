"""The package can be imported by the serving config without an import cycle."""

from __future__ import annotations

import subprocess
import sys


def test_mixed_config_imports_without_the_engine_or_torch() -> None:
    code = (
        "import sys, tuneforge_serving.mixed.config as c; "
        "c.MixedBatchingConfig.model_validate({'maxBatchSize': 8, 'maxWaitS': 0.05}); "
        "print(sorted(m for m in ('torch', 'tuneforge_serving.engine') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_config_rejects_unknown_fields_and_bad_values() -> None:
    import pytest
    from pydantic import ValidationError

    from tuneforge_serving.mixed import MixedBatchingConfig

    with pytest.raises(ValidationError, match="maxBatchSize|max_batch_size"):
        MixedBatchingConfig.model_validate({"maxBatchSize": 0})
    with pytest.raises(ValidationError, match="extra"):
        MixedBatchingConfig.model_validate({"batchSize": 4})
