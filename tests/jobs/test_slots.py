"""The run slots (max-parallel): at most so many runs at once, waiters served in the order of their first
trigger, a limit changed while runs go."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.runner.slots import Slots

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
WAIT = 5.0


class Holder:
    """A task holding a slot until released; ``entered`` set once it holds it."""

    def __init__(self, slots: Slots, since: datetime, order: list[str], name: str) -> None:
        self.entered = asyncio.Event()
        self.in_line = asyncio.Event()
        self.release = asyncio.Event()
        self.waits: list[bool] = []
        self.task = asyncio.create_task(self._hold(slots, since, order, name))

    def _waiting(self, waiting: bool) -> None:
        self.waits.append(waiting)
        if waiting:
            self.in_line.set()

    async def _hold(self, slots: Slots, since: datetime, order: list[str], name: str) -> None:
        async with slots.hold(since, self._waiting):
            order.append(name)
            self.entered.set()
            await self.release.wait()


async def entered(holder: Holder) -> None:
    async with asyncio.timeout(WAIT):
        await holder.entered.wait()


async def in_line(*holders: Holder) -> None:
    async with asyncio.timeout(WAIT):
        for holder in holders:
            await holder.in_line.wait()


async def test_no_limit_lets_every_run_go_at_once_without_waiting() -> None:
    slots, order = Slots(None), []
    holders = [Holder(slots, T0, order, str(n)) for n in range(5)]
    for holder in holders:
        await entered(holder)
    assert slots.busy == 5 and all(h.waits == [] for h in holders)
    for holder in holders:
        holder.release.set()
    await asyncio.gather(*(h.task for h in holders))
    assert slots.busy == 0


async def test_waiters_start_in_the_order_of_their_first_trigger_not_of_their_asking() -> None:
    slots, order = Slots(1), []
    first = Holder(slots, T0, order, "first")
    await entered(first)
    late = Holder(slots, T0 + timedelta(minutes=3), order, "late")  # asks first, was triggered last
    early = Holder(slots, T0 + timedelta(minutes=1), order, "early")
    middle = Holder(slots, T0 + timedelta(minutes=2), order, "middle")
    await in_line(late, early, middle)
    assert slots.waiting == 3
    assert [late.waits, early.waits, middle.waits] == [[True]] * 3
    for holder in (first, early, middle):
        holder.release.set()
    for holder in (early, middle, late):
        await entered(holder)
    late.release.set()
    await asyncio.gather(*(h.task for h in (first, early, middle, late)))
    assert order == ["first", "early", "middle", "late"]
    assert late.waits == [True, False]


async def test_a_waiter_cancelled_leaves_the_line_and_takes_no_slot() -> None:
    slots, order = Slots(1), []
    first = Holder(slots, T0, order, "first")
    await entered(first)
    gone = Holder(slots, T0, order, "gone")
    nxt = Holder(slots, T0 + timedelta(seconds=1), order, "next")
    await in_line(gone, nxt)
    gone.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone.task
    assert gone.waits == [True, False] and slots.waiting == 1
    first.release.set()
    await entered(nxt)
    nxt.release.set()
    await asyncio.gather(first.task, nxt.task)
    assert order == ["first", "next"] and slots.busy == 0


async def test_a_higher_limit_starts_waiters_at_once_and_a_lower_one_holds_back_the_next() -> None:
    slots, order = Slots(1), []
    a = Holder(slots, T0, order, "a")
    await entered(a)
    b = Holder(slots, T0, order, "b")
    await in_line(b)
    slots.limit = 2
    await entered(b)
    assert slots.busy == 2
    slots.limit = 1  # both go on; the next waits until both have ended
    c = Holder(slots, T0, order, "c")
    await in_line(c)
    a.release.set()
    await a.task
    assert not c.entered.is_set() and slots.busy == 1, "one run still goes: the lower limit is reached"
    b.release.set()
    await entered(c)
    c.release.set()
    await asyncio.gather(b.task, c.task)
