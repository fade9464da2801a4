"""Supervising the running run: its deadlines (the timeout, no progress for the stall timeout) and a cancel
request, each a :class:`Stop`. The deadlines are pure functions of monotonic times; the :class:`Supervisor`
sleeps to the nearest one and wakes on progress, on a cancel, or when the job ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.core.clock import Clock
from orchestrator.core.events import RunStatus
from orchestrator.core.steps import STARTING
from orchestrator.job.protocol import JobResult

MAX_REMEMBERED_REPORTS = 4096

Sign = tuple[float, str, str | None, int | None]
"""What tells one report from another (percent, step, detail, done): see ``Progress.sign``."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the runner is ending a run that has not ended by itself."""

    status: RunStatus
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The limits a run is held to; ``None`` is no limit."""

    timeout: timedelta | None = None
    stall_timeout: timedelta | None = None

    def due(self, *, started: float, last_progress: float) -> list[tuple[float, Stop]]:
        """(monotonic time, why) at which a run started at ``started`` and last seen moving at
        ``last_progress`` (both monotonic) is to be ended."""
        found: list[tuple[float, Stop]] = []
        if self.timeout is not None:
            detail = f" (still running after {_minutes(self.timeout)})"
            found.append((started + self.timeout.total_seconds(), Stop(RunStatus.ERROR, "timed out", detail)))
        if self.stall_timeout is not None:
            detail = f" (no progress for {_minutes(self.stall_timeout)})"
            at = last_progress + self.stall_timeout.total_seconds()
            found.append((at, Stop(RunStatus.ERROR, "stalled", detail)))
        return found


def overdue(due: list[tuple[float, Stop]], now: float) -> Stop | None:
    """The first deadline passed at monotonic ``now``, if any."""
    return next((stop for at, stop in due if now >= at), None)


def seconds_to_nearest(due: list[tuple[float, Stop]], now: float) -> float | None:
    """How long from monotonic ``now`` to the nearest deadline (never negative); ``None`` if there is none."""
    at = min((at for at, _ in due), default=None)
    return None if at is None else max(0.0, at - now)


class Supervisor:
    """The running run's supervision: the stop asked for it, and the progress seen of it."""

    def __init__(self, clock: Clock, deadlines: Deadlines, on_change: Callable[[], None]) -> None:
        self._clock = clock
        self._deadlines = deadlines
        self._on_change = on_change
        self.stop_request: Stop | None = None
        self.watch = asyncio.Event()
        """Wakes the supervisor of the running run: it ended, was cancelled, or made progress."""
        self._seen: Sign | None = None
        self._reported: set[Sign] = set()
        """Every report of the running run already seen, to tell echoes in the file from news."""
        # Durations on the monotonic clock: an NTP step or a resumed VM must not end a run early.
        self._started = 0.0
        self._last_progress = 0.0

    def begin(self) -> None:
        """Fresh supervision for a run about to become visible: a cancel from now on is for this run."""
        self.stop_request = None
        self._seen = (0.0, STARTING, None, None)
        self._reported = {self._seen}
        self._started = self._last_progress = self._clock.monotonic()

    def is_echo(self, sign: Sign) -> bool:
        """Whether this report was seen already (the progress file echoes what the runner wrote)."""
        return sign in self._reported

    def saw_progress(self, sign: Sign) -> None:
        """A report of the running run. Only a change counts; the same report again is no sign of life."""
        if sign == self._seen:
            return
        self._seen = sign
        if len(self._reported) >= MAX_REMEMBERED_REPORTS:
            self._reported.clear()  # forgetting costs at most a stale echo counted as progress
        self._reported.add(sign)
        self._last_progress = self._clock.monotonic()
        self.watch.set()

    async def supervise(self, job: asyncio.Task[JobResult]) -> Stop | None:
        """Wait for the job to end by itself (``None``), or for a reason to end it: a cancel request, the
        timeout, or no progress for the stall timeout. Sleeps to the nearest deadline; never polls."""
        while not job.done():
            self.watch.clear()
            if self.stop_request is not None:
                return self.stop_request
            due = self._deadlines.due(started=self._started, last_progress=self._last_progress)
            self.stop_request = overdue(due, self._clock.monotonic())
            if self.stop_request is not None:
                self._on_change()  # "stopping" shows while the job gets its grace period
                return self.stop_request
            await self._clock.wait(self.watch, self._wake_at(due))
        return None

    def _wake_at(self, due: list[tuple[float, Stop]]) -> datetime | None:
        """The nearest deadline as a wall-clock time for :meth:`Clock.wait`, recomputed on each wake."""
        seconds = seconds_to_nearest(due, self._clock.monotonic())
        return None if seconds is None else self._clock.now() + timedelta(seconds=seconds)


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"
