"""How many LoRA slots of which rank a replica allocates: rank buckets within a memory budget.

Pure arithmetic (no torch), so the rule is tested on its own. A slot of rank `r` costs
`r x bytes_per_rank` bytes, where `bytes_per_rank` is the sum over the slot layers of
`(in x kh x kw + out) x dtype size` (one row of A, one column of B; `kh = kw = 1` for a
Linear). The rule, for `adapterLruSize` slots in all:

1. buckets with an explicit `slots` count keep it;
2. the remaining slots go to the other buckets: one each, largest rank first, then the
   rest to the smallest of them;
3. while the total is over `memoryBudgetMB`, a derived slot of the largest rank becomes one
   of the smallest bucket's rank; when all derived slots are of the smallest rank, derived
   slots are dropped. Explicit counts are never changed: a budget they exceed is a start-up
   error, as is a budget too small for a single slot.

Ranks above the largest slot that is left are "over the memory budget" (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class BankPlan:
    """The slot ranks a replica allocates (slot index -> rank, ascending) and their cost."""

    ranks: tuple[int, ...]
    bytes_per_rank: int
    budget_bytes: int | None

    @property
    def total_bytes(self) -> int:
        """Memory all slots take (A and B of every slot layer)."""
        return self.bytes_per_rank * sum(self.ranks)

    def counts(self) -> dict[int, int]:
        """Slots per rank, ascending."""
        result: dict[int, int] = {}
        for rank in self.ranks:
            result[rank] = result.get(rank, 0) + 1
        return result

    def describe(self) -> str:
        """`2 x rank 16 + 1 x rank 64 = 12.3 MB (budget 1024 MB)` for logs and messages."""
        parts = " + ".join(f"{n} x rank {r}" for r, n in self.counts().items())
        budget = f"{self.budget_bytes / MIB:g} MB" if self.budget_bytes is not None else "none"
        return f"{parts} = {self.total_bytes / MIB:.1f} MB (budget {budget})"


def plan_banks(
    buckets: Sequence[tuple[int, int | None]],
    total_slots: int,
    bytes_per_rank: int,
    budget_bytes: int | None,
) -> BankPlan:
    """Slot ranks for `buckets` (`(rank, explicit slots or None)`), see the module doc."""
    if not buckets:
        raise ValueError("hotswap.rankBuckets is empty: name at least one slot rank")
    ordered = sorted(buckets)
    explicit = {rank: slots for rank, slots in ordered if slots is not None}
    derived_ranks = [rank for rank, slots in ordered if slots is None]
    remaining = total_slots - sum(explicit.values())
    if remaining < 0 or (remaining > 0 and not derived_ranks):
        raise ValueError(
            f"hotswap.rankBuckets: the buckets' slots ({sum(explicit.values())}) must add up "
            f"to adapterLruSize ({total_slots})"
        )
    derived: list[int] = []
    for rank in reversed(derived_ranks):
        if remaining == 0:
            break
        derived.append(rank)
        remaining -= 1
    if derived_ranks:
        derived.extend([derived_ranks[0]] * remaining)

    def cost(ranks: Sequence[int]) -> int:
        return bytes_per_rank * sum(ranks)

    fixed = [rank for rank, count in explicit.items() for _ in range(count)]
    if budget_bytes is not None:
        if fixed and cost(fixed) > budget_bytes:
            raise ValueError(
                f"hotswap.rankBuckets' explicit slots need {cost(fixed) / MIB:.1f} MB on this "
                f"base model, over hotswap.memoryBudgetMB ({budget_bytes / MIB:g} MB)"
            )
        smallest = derived_ranks[0] if derived_ranks else 0
        while derived and cost(fixed + derived) > budget_bytes:
            largest = max(derived)
            derived.remove(largest)
            if largest != smallest and cost([*fixed, *derived, smallest]) <= budget_bytes:
                derived.append(smallest)
    ranks = tuple(sorted(fixed + derived))
    if not ranks:
        need = cost([min(rank for rank, _ in ordered)])
        raise ValueError(
            f"hotswap.memoryBudgetMB ({(budget_bytes or 0) / MIB:g} MB) holds no LoRA slot on "
            f"this base model: the smallest (rank {min(r for r, _ in ordered)}) needs "
            f"{need / MIB:.1f} MB"
        )
    return BankPlan(ranks=ranks, bytes_per_rank=bytes_per_rank, budget_bytes=budget_bytes)


def fits(slot_ranks: Sequence[int], adapter_ranks: Sequence[int]) -> bool:
    """Whether adapters of `adapter_ranks` can sit in distinct slots of `slot_ranks` at once.

    Each adapter needs a slot of at least its rank; since those sets are nested, this holds
    exactly when, for every rank `r`, the adapters needing more than `r` are no more than
    the slots above `r` (Hall's condition).
    """
    if len(adapter_ranks) > len(slot_ranks):
        return False
    for threshold in {0, *slot_ranks}:
        needing = sum(1 for rank in adapter_ranks if rank > threshold)
        if needing > sum(1 for rank in slot_ranks if rank > threshold):
            return False
    return True
