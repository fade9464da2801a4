"""The interval timer: puts a ``timer`` trigger on the queue when the next automatic run is due."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from orchestrator.core.clock import Clock
from orchestrator.core.events import Source, Trigger


class IntervalTimer:
    """Puts a ``timer`` trigger on the queue when the next automatic run is due.

    It sleeps until that moment or until :meth:`reschedule` is called (a run started or ended, a cooldown
    began), then looks again: no polling. ``due`` returns the due time (``None`` while a run is going: the
    due time is only known once it ends, when a cooldown may begin) and the inputs it was computed from;
    once the timer has fired for a set of inputs it waits for them to change, so it never asks twice for
    the same run.
    """

    def __init__(
        self,
        queue: asyncio.Queue[Trigger],
        clock: Clock,
        due: Callable[[], tuple[datetime | None, object]],
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._due = due
        self._wake = asyncio.Event()

    def reschedule(self) -> None:
        self._wake.set()

    async def serve(self) -> None:
        fired_for: object = None
        source = Source.STARTUP  # a run due at the first look was due before we started
        while True:
            self._wake.clear()
            due, inputs = self._due()
            if due is None or inputs == fired_for:
                await self._clock.wait(self._wake, None)
            elif due <= self._clock.now():
                await self._queue.put(Trigger(source, self._clock.now(), "scheduled"))
                fired_for = inputs
            else:
                await self._clock.wait(self._wake, due)
            source = Source.TIMER
