"""Mixed-adapter batching: requests with different adapters share one pipeline call.

- `SampleMixing`: plans a batch into calls and routes each sample of a call to its own
  LoRA set (peft's per-sample `adapter_names`); the engine holds one when
  `mixedBatching.enabled`, and its one generation path uses it;
- `SampleRouter` (`routing`), `AdapterMixer` (`mixes`): the per-sample mechanics;
- `MixedBatchMetrics`: Prometheus metrics; `MixedBatchingConfig`: the settings;
- `Fallback`, `split_for_slots` (`plan`): pure planning.

The batch former itself is `tuneforge_serving.batching` (keyed by shape when mixing).
Names are imported lazily, so `tuneforge_serving.config` can import
`tuneforge_serving.mixed.config` without pulling in torch (no import cycle).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge_serving.mixed.config import MixedBatchingConfig
    from tuneforge_serving.mixed.metrics import MixedBatchMetrics
    from tuneforge_serving.mixed.mixing import SampleMixing
    from tuneforge_serving.mixed.plan import Fallback, split_for_slots

_WHERE = {
    "Fallback": "plan",
    "MixedBatchMetrics": "metrics",
    "MixedBatchingConfig": "config",
    "SampleMixing": "mixing",
    "split_for_slots": "plan",
}

__all__ = [
    "Fallback",
    "MixedBatchMetrics",
    "MixedBatchingConfig",
    "SampleMixing",
    "split_for_slots",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
