"""The service's run slots: how many runs of different jobs may go at once (``max-parallel``), shared by every
job's runner. A job that finds no slot free waits, and the waiting jobs get slots in the order of their first
pending trigger, not in the order they happened to ask."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import datetime


class Slots:
    """At most ``limit`` runs at once (``None``: no limit). The limit may change while runs go (a reload):
    a lower one lets the runs going finish and holds the next ones back; a higher one starts waiters at once."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        self._busy = 0
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def limit(self) -> int | None:
        return self._limit

    @limit.setter
    def limit(self, value: int | None) -> None:
        self._limit = value
        self._wake()

    @property
    def busy(self) -> int:
        """Slots held now."""
        return self._busy

    @property
    def waiting(self) -> int:
        return sum(1 for *_, future in self._waiters if not future.done())

    @contextlib.asynccontextmanager
    async def hold(self, since: datetime, on_wait: Callable[[bool], None] = lambda _: None) -> AsyncIterator[None]:
        """A slot for the body; ``since``: when the run was first asked for (its place in the line).
        ``on_wait(True)`` when the caller has to wait, ``on_wait(False)`` once it stops waiting."""
        if not self._waiters and self._free():
            self._busy += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (since, next(self._order), future))
            on_wait(True)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # granted and cancelled in the same turn: hand it on
                raise
            finally:
                on_wait(False)
        try:
            yield
        finally:
            self._release()

    @property
    def free_now(self) -> bool:
        """Whether :meth:`take` may be called: a slot is free and nobody waits for one."""
        return not self.waiting and self._free()

    def take(self) -> None:
        """A free slot at once (see :attr:`free_now`), held until :meth:`release`."""
        assert self.free_now
        self._busy += 1

    def release(self) -> None:
        """Give back a slot :meth:`take` took."""
        self._release()

    def _free(self) -> bool:
        return self._limit is None or self._busy < self._limit

    def _release(self) -> None:
        self._busy -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._free():
            *_, future = heapq.heappop(self._waiters)
            if not future.done():
                self._busy += 1
                future.set_result(None)
