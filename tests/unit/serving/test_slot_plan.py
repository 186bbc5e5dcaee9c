"""Rank buckets within the memory budget (pure), and the replica's multiplex size."""

from __future__ import annotations

from typing import Any

import pytest

from tuneforge_serving.config import ServingConfig
from tuneforge_serving.slot_plan import MIB, fits, plan_banks


def test_buckets_get_one_slot_largest_first_and_the_rest_go_to_the_smallest() -> None:
    assert plan_banks([(16, None), (64, None)], 3, 1000, None).ranks == (16, 16, 64)
    assert plan_banks([(64, None), (16, None)], 1, 1000, None).ranks == (64,)
    assert plan_banks([(16, 2), (64, None)], 4, 1000, None).ranks == (16, 16, 64, 64)


def test_over_the_budget_large_slots_become_small_ones_then_go() -> None:
    per_rank = MIB // 100  # a rank-64 slot: 0.64 MB, a rank-16 one 0.16 MB
    plan = plan_banks([(16, None), (64, None)], 3, per_rank, int(0.5 * MIB))
    assert plan.ranks == (16, 16, 16) and plan.total_bytes <= 0.5 * MIB
    assert plan_banks([(16, None), (64, None)], 3, per_rank, int(0.35 * MIB)).ranks == (16, 16)
    assert "3 x rank 16" in plan.describe() and "budget 0.5 MB" in plan.describe()
    with pytest.raises(ValueError, match="holds no LoRA slot .*rank 16"):
        plan_banks([(16, None)], 3, per_rank, int(0.1 * MIB))
    with pytest.raises(ValueError, match="explicit slots need .* over hotswap.memoryBudgetMB"):
        plan_banks([(64, 1)], 1, per_rank, int(0.5 * MIB))


def test_fits_is_halls_condition_on_nested_buckets() -> None:
    slots = [16, 16, 64]
    assert fits(slots, [64, 4, 4])
    assert not fits(slots, [64, 64])
    assert not fits(slots, [20, 20])
    assert not fits(slots, [4, 4, 4, 4])
    assert fits(slots, [0, 16, 33])


def test_config_buckets_and_the_max_lora_rank_shorthand() -> None:
    assert ServingConfig(base_model="m").hotswap.buckets() == [(16, None), (64, None)]
    assert ServingConfig(base_model="m", hotswap={"maxLoraRank": 8}).hotswap.buckets() == [
        (8, None)
    ]
    config = ServingConfig(base_model="m", hotswap={"rankBuckets": [16, {"rank": 64, "slots": 1}]})
    assert config.hotswap.buckets() == [(16, None), (64, 1)]
    with pytest.raises(ValueError, match="must add up to adapterLruSize"):
        ServingConfig(
            base_model="m",
            adapter_lru_size=2,
            hotswap={"rankBuckets": [{"rank": 16, "slots": 1}, {"rank": 64, "slots": 2}]},
        )


def test_serve_multiplex_size_is_the_replicas_slot_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """`max_num_models_per_replica` follows the engine's slots (after the budget), not 8."""
    from tuneforge_serving import deployment

    class FakeEngine:
        def __init__(self, config: Any, source: Any) -> None:
            self.slot_count = 2

    monkeypatch.setattr(deployment, "ServingEngine", FakeEngine)
    monkeypatch.setattr(deployment, "BatchedEngine", lambda engine: None)
    server = deployment.ModelServer({"baseModel": "m", "adapterLruSize": 3})
    assert server.max_num_models == 2
    assert server._hold_adapter_set.__wrapped__.__name__ == "hold_adapter_set"
