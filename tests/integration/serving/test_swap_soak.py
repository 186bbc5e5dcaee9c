"""1000 adapter switches on the serving engine (in-process, real MLflow registry + S3).

Ten LoRA adapters, an adapter LRU of 3: every request switches adapter and most evict.
Each image must equal, byte for byte, the image that adapter gives alone under the same
seed, with no errors and no memory growth (the load/unload leaks of diffusers #8532 and
peft #1639 are what this guards against).
"""

from __future__ import annotations

import gc
import random
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SWITCHES = 1000
WARM_UP = 100
ADAPTERS = 10


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def test_1000_switches_across_10_adapters_with_lru_3(
    registry_settings: Any, registered: dict[str, str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tuneforge.contract import AdapterRef
    from tuneforge.registry import AdapterRegistry
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.jobs import GenerationJob

    registry = AdapterRegistry(registry_settings)
    config = ServingConfig(
        base_model=str(tiny_model_dir),
        cache_dir=tmp_path / "cache",
        adapter_lru_size=3,
        host_cache_size=ADAPTERS,
        hotswap={"max_lora_rank": 8},
    )
    engine = ServingEngine(config, registry)
    resolved = [
        registry.resolve(AdapterRef(registered[f"lora{i}"], alias="prod")) for i in range(ADAPTERS)
    ]

    def run(index: int) -> bytes:
        job = GenerationJob(
            prompt="a photo of a cat",
            adapters=[(resolved[index], 1.0)],
            steps=1,
            guidance_scale=1.0,
            width=64,
            height=64,
            seed=1234,
        )
        output = engine.generate(job)
        assert output.error is None, output.error
        image: bytes = output.images[0]
        return image

    references = [run(i) for i in range(ADAPTERS)]
    assert len(set(references)) == ADAPTERS
    order = random.Random(0)
    previous, errors, mismatches = ADAPTERS - 1, 0, []
    rss_after_warm_up = 0
    for switch in range(SWITCHES):
        index = order.choice([i for i in range(ADAPTERS) if i != previous])
        try:
            if run(index) != references[index]:
                mismatches.append((switch, index))
        except AssertionError:
            errors += 1
        previous = index
        if switch == WARM_UP - 1:
            rss_after_warm_up = _rss()
    growth = (_rss() - rss_after_warm_up) / rss_after_warm_up
    assert errors == 0
    assert mismatches == []
    assert engine.stats.slot_evictions >= SWITCHES // 2, "the LRU of 3 should evict most times"
    assert len(engine.attached()) == 3
    assert growth < 0.05, f"RSS grew {growth:.1%} after warm-up"
