"""Pure planning for mixed batches: why a request cannot be mixed, and how to split a batch.

No torch here: these functions work on plain keys so they are tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence, Set
from enum import Enum


class Fallback(str, Enum):
    """Why a request left the mixed batch for a pipeline call of its own (metric label)."""

    TOO_MANY_LORAS = "too_many_loras"
    """It combines more LoRAs than `mixedBatching.maxCombinedLoras`."""
    FUSED = "fused"
    """The pipeline has a fused (merged) LoRA; peft cannot route samples around it."""


def fallback_reason(loras: int, max_combined: int, any_merged: bool) -> Fallback | None:
    """Why a request with `loras` LoRAs cannot join a mixed call, or None when it can."""
    if loras and any_merged:
        return Fallback.FUSED
    if loras > max_combined:
        return Fallback.TOO_MANY_LORAS
    return None


def split_for_slots(
    adapter_sets: Sequence[frozenset[Hashable]],
    image_counts: Sequence[int],
    slot_capacity: int,
    max_images: int,
    fits: Callable[[Set[Hashable]], bool] | None = None,
) -> list[list[int]]:
    """Positions grouped so each group's adapters fit the slots and its images the limit.

    First fit in arrival order: a request joins the first group that still has room for
    its adapters (the union of the group's sets stays within `slot_capacity` and, when
    given, `fits` it: rank buckets) and its images; otherwise it opens a new group. Groups
    keep arrival order inside.
    """

    def room(adapters: Set[Hashable]) -> bool:
        return len(adapters) <= slot_capacity and (fits is None or fits(adapters))

    if len(adapter_sets) != len(image_counts):
        raise ValueError("adapter_sets and image_counts need one entry per request")
    groups: list[list[int]] = []
    unions: list[set[Hashable]] = []
    images: list[int] = []
    for position, (adapters, count) in enumerate(zip(adapter_sets, image_counts, strict=True)):
        if not room(adapters):
            raise ValueError(
                f"request {position} uses {len(adapters)} adapters but the pipeline has "
                f"{slot_capacity} slots; the API limit maxAdaptersPerRequest prevents this"
            )
        for index, group in enumerate(groups):
            if room(unions[index] | adapters) and images[index] + count <= max_images:
                group.append(position)
                unions[index] |= adapters
                images[index] += count
                break
        else:
            groups.append([position])
            unions.append(set(adapters))
            images.append(count)
    return groups
