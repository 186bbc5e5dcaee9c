"""Mixed-adapter batching (issue 8): requests with different adapters share one UNet batch.

- `MixedBatchFormer` (asyncio): gathers concurrent requests of one shape, whatever their
  adapters, up to a batch size and a wait time, and resolves each caller's future;
- `MixedBatchRunner`: runs such a batch on a `ServingEngine` as one pipeline call, each
  sample with its own LoRA set (peft's per-sample `adapter_names`) and TI tokens;
- `MixedBatching`: the two wired to one engine (what the deployment holds);
- `MixedBatchMetrics`: Prometheus metrics; `MixedBatchingConfig`: the settings.

Names are imported lazily, so `tuneforge_serving.config` can import
`tuneforge_serving.mixed.config` without pulling in the engine (no import cycle).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge_serving.mixed.config import MixedBatchingConfig
    from tuneforge_serving.mixed.former import MixedBatchFormer
    from tuneforge_serving.mixed.metrics import MixedBatchMetrics
    from tuneforge_serving.mixed.plan import Fallback, shape_key
    from tuneforge_serving.mixed.runner import MixedBatchRunner
    from tuneforge_serving.mixed.service import MixedBatching

_WHERE = {
    "Fallback": "plan",
    "MixedBatchFormer": "former",
    "MixedBatchMetrics": "metrics",
    "MixedBatchRunner": "runner",
    "MixedBatching": "service",
    "MixedBatchingConfig": "config",
    "shape_key": "plan",
}

__all__ = [
    "Fallback",
    "MixedBatchFormer",
    "MixedBatchMetrics",
    "MixedBatchRunner",
    "MixedBatching",
    "MixedBatchingConfig",
    "shape_key",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
