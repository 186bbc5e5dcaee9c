"""CreatesFirst: follow-up writes wait for create paths in flight, within a bound."""

from __future__ import annotations

import asyncio

import pytest

from tuneforge_operator.lanes import CreatesFirst


def test_follow_up_waits_until_no_create_path_is_in_flight() -> None:
    async def scenario() -> list[str]:
        lanes = CreatesFirst(slots=2, max_wait_s=60.0)
        order: list[str] = []
        release = asyncio.Event()

        async def create(name: str) -> None:
            with lanes.create_path():
                await release.wait()
                order.append(f"created {name}")

        async def follow_up() -> None:
            async with lanes.follow_up():
                order.append("follow-up")

        creates = [asyncio.create_task(create(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        assert lanes.creating == 2
        waiting = asyncio.create_task(follow_up())
        await asyncio.sleep(0.01)
        assert order == []  # held back while creates are in flight
        release.set()
        await asyncio.gather(*creates, waiting)
        assert lanes.creating == 0
        return order

    assert asyncio.run(scenario()) == ["created a", "created b", "follow-up"]


def test_follow_up_goes_ahead_after_the_bound_and_runs_at_most_slots_at_once() -> None:
    async def scenario() -> int:
        lanes = CreatesFirst(slots=1, max_wait_s=0.01)
        running, most = 0, 0

        async def follow_up() -> None:
            nonlocal running, most
            async with lanes.follow_up():
                running += 1
                most = max(most, running)
                await asyncio.sleep(0.005)
                running -= 1

        with lanes.create_path():  # a create that never ends does not block for ever
            await asyncio.gather(*(follow_up() for _ in range(3)))
        return most

    assert asyncio.run(scenario()) == 1


def test_follow_up_passes_straight_through_outside_a_burst() -> None:
    async def scenario() -> bool:
        lanes = CreatesFirst(max_wait_s=60.0)
        async with asyncio.timeout(1.0):
            async with lanes.follow_up():
                return True

    assert asyncio.run(scenario())


def test_slots_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slots must be at least 1"):
        CreatesFirst(slots=0)
