"""Pure planning: batch keys (shape, adapter choice), fallbacks, splits to fit the slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tuneforge_serving.jobs import GenerationJob
from tuneforge_serving.mixed.plan import Fallback, fallback_reason, split_for_slots


@dataclass(frozen=True)
class _Resolved:
    name: str
    version: int


def _job(adapters: list[tuple[str, int, float]] | None = None, **shape: Any) -> GenerationJob:
    values: dict[str, Any] = {"width": 64, "height": 64, "steps": 3, **shape}
    pairs = [(_Resolved(n, v), w) for n, v, w in adapters or []]
    return GenerationJob(prompt="x", adapters=pairs, **values)


def test_shape_key_ignores_adapters_but_not_shape() -> None:
    assert _job([("a", 1, 1.0)]).shape_key() == _job([("b", 2, 0.5)]).shape_key()
    for change in ({"width": 72}, {"height": 72}, {"steps": 4}, {"guidance_scale": 1.0}):
        assert _job(**change).shape_key() != _job().shape_key(), change


def test_choice_key_adds_versions_and_weights_in_any_order() -> None:
    two = _job([("a", 1, 1.0), ("b", 2, 0.5)])
    assert two.choice_key() == _job([("b", 2, 0.5), ("a", 1, 1.0)]).choice_key()
    assert two.choice_key() != _job([("a", 1, 1.0), ("b", 3, 0.5)]).choice_key()
    assert two.choice_key() != _job([("a", 1, 1.0), ("b", 2, 0.7)]).choice_key()
    assert two.choice_key()[:4] == two.shape_key()
    assert two.adapter_set_id() == "a/1,b/2" and _job().adapter_set_id() == "base"


def test_fallback_reasons() -> None:
    assert fallback_reason(loras=2, max_combined=2, any_merged=False) is None
    assert fallback_reason(loras=3, max_combined=2, any_merged=False) is Fallback.TOO_MANY_LORAS
    assert fallback_reason(loras=1, max_combined=2, any_merged=True) is Fallback.FUSED
    assert fallback_reason(loras=0, max_combined=2, any_merged=True) is None


def test_split_keeps_one_group_when_the_union_fits() -> None:
    sets = [frozenset({"a"}), frozenset({"b"}), frozenset(), frozenset({"a", "c"})]
    assert split_for_slots(sets, [1, 1, 1, 1], slot_capacity=3, max_images=8) == [[0, 1, 2, 3]]


def test_split_first_fit_when_the_union_exceeds_the_slots() -> None:
    sets = [frozenset({"a", "b"}), frozenset({"c", "d"}), frozenset({"a"}), frozenset({"d"})]
    groups = split_for_slots(sets, [1, 1, 1, 1], slot_capacity=3, max_images=8)
    assert groups == [[0, 2, 3], [1]]
    for group in groups:
        assert len(set().union(*(sets[p] for p in group))) <= 3


def test_split_respects_the_image_limit() -> None:
    sets = [frozenset()] * 3
    assert split_for_slots(sets, [2, 2, 1], slot_capacity=1, max_images=3) == [[0, 2], [1]]


def test_split_refuses_a_request_larger_than_the_slots() -> None:
    with pytest.raises(ValueError, match="maxAdaptersPerRequest"):
        split_for_slots([frozenset({"a", "b"})], [1], slot_capacity=1, max_images=4)
