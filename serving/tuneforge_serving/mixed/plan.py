"""Pure planning for mixed batches: which requests may share a call, and how to split it.

No torch here: these functions work on plain keys so they are tested on their own.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from enum import Enum
from typing import Any


class Fallback(str, Enum):
    """Why a request left the mixed batch for a pipeline call of its own (metric label)."""

    TOO_MANY_LORAS = "too_many_loras"
    """It combines more LoRAs than `mixedBatching.maxCombinedLoras`."""
    FUSED = "fused"
    """The pipeline has a fused (merged) LoRA; peft cannot route samples around it."""


def shape_key(job: Any) -> tuple[Any, ...]:
    """What requests must share to run in one pipeline call, whatever their adapters.

    Size, steps, guidance scale and scheduler (when a job names one) shape the whole
    call; prompts, seeds, image counts and adapters are per sample.
    """
    return (
        int(job.width),
        int(job.height),
        int(job.steps),
        float(job.guidance_scale),
        getattr(job, "scheduler", None),
    )


def split_for_slots(
    adapter_sets: Sequence[frozenset[Hashable]],
    image_counts: Sequence[int],
    slot_capacity: int,
    max_images: int,
) -> list[list[int]]:
    """Positions grouped so each group's adapters fit the slots and its images the limit.

    First fit in arrival order: a request joins the first group that still has room for
    its adapters (the union of the group's sets stays within `slot_capacity`) and its
    images; otherwise it opens a new group. Groups keep arrival order inside.
    """
    if len(adapter_sets) != len(image_counts):
        raise ValueError("adapter_sets and image_counts need one entry per request")
    groups: list[list[int]] = []
    unions: list[set[Hashable]] = []
    images: list[int] = []
    for position, (adapters, count) in enumerate(zip(adapter_sets, image_counts, strict=True)):
        if len(adapters) > slot_capacity:
            raise ValueError(
                f"request {position} uses {len(adapters)} adapters but the pipeline has "
                f"{slot_capacity} slots; the API limit maxAdaptersPerRequest prevents this"
            )
        for index, group in enumerate(groups):
            if (
                len(unions[index] | adapters) <= slot_capacity
                and images[index] + count <= max_images
            ):
                group.append(position)
                unions[index] |= adapters
                images[index] += count
                break
        else:
            groups.append([position])
            unions.append(set(adapters))
            images.append(count)
    return groups
