"""Pure planning: shape keys ignore adapters; batches split to fit the slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tuneforge_serving.mixed.plan import shape_key, split_for_slots


@dataclass
class _Job:
    width: int = 64
    height: int = 64
    steps: int = 3
    guidance_scale: float = 7.5
    adapters: list[Any] = field(default_factory=list)


def test_shape_key_ignores_adapters_but_not_shape() -> None:
    assert shape_key(_Job(adapters=["a"])) == shape_key(_Job(adapters=["b", "c"]))
    for change in ({"width": 72}, {"height": 72}, {"steps": 4}, {"guidance_scale": 1.0}):
        assert shape_key(_Job(**change)) != shape_key(_Job()), change


def test_shape_key_includes_a_scheduler_when_jobs_name_one() -> None:
    ddim, euler = _Job(), _Job()
    ddim.scheduler = "ddim"  # type: ignore[attr-defined]
    euler.scheduler = "euler"  # type: ignore[attr-defined]
    assert shape_key(ddim) != shape_key(euler)


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
