"""Time as a seam: the service asks a clock for "now" and waits on it, so tests can move time by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import datetime, timedelta
from typing import Protocol

from orchestrator.core.events import utcnow


class Clock(Protocol):
    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for durations: a wall-clock step must not end a run early)."""
        ...

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> bool:
        """Wait until ``wake`` is set or ``until`` has come; ``True`` if woken, ``False`` if the time came.

        ``until=None`` waits for ``wake`` alone.
        """
        ...


class SystemClock:
    """The real clock. Waits are one sleep to the deadline (or the wake event), never a polling loop."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> bool:
        timeout = None if until is None else max(0.0, (until - self.now()).total_seconds())
        try:
            async with asyncio.timeout(timeout):
                await wake.wait()
        except TimeoutError:
            return False
        return True


class FakeClock:
    """A clock that moves only when told to; for tests of the schedule, cooldown and coalescing."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._start = start
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return (self._now - self._start).total_seconds()

    def step_wall_clock(self, delta: timedelta) -> None:
        """The wall clock is set (an NTP step, a resumed VM) while no time passes: ``monotonic`` stays put."""
        self._now += delta
        self._start += delta

    def advance(self, delta: timedelta) -> None:
        """Move time forward and release every waiter whose deadline has come."""
        self._now += delta
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def wait(self, wake: asyncio.Event, until: datetime | None) -> bool:
        if wake.is_set():
            return True
        if until is not None and until <= self._now:
            return False
        loop = asyncio.get_running_loop()
        deadline: asyncio.Future[None] = loop.create_future()
        if until is not None:
            heapq.heappush(self._sleepers, (until, next(self._order), deadline))
        woken: asyncio.Future[object] = asyncio.ensure_future(wake.wait())
        pending: set[asyncio.Future[object]] = {woken, deadline}  # type: ignore[arg-type]
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            deadline.cancel()
        return wake.is_set()
