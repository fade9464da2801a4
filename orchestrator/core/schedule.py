"""When the next automatic run is due. Pure: every function takes ``now`` and touches nothing else.

:class:`Schedule` is the interval kind; the calendar kind is :class:`~orchestrator.core.calendar.CronSchedule`.
Both are a :class:`Timing`, which is all the timer, the status and the checks need to know of a schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class Timing(Protocol):
    """A schedule of automatic runs: when the next is due, and the quiet period a manual run imposes."""

    def next_run_at(self, *, last_run_at: datetime | None, not_before: datetime | None, now: datetime) -> datetime:
        """The moment the next automatic run is due: in the past when one fell due and has not run (it is due
        now, once), never before ``not_before``. Asked again with the same inputs, it answers the same moment,
        so a timer that wakes a little after it finds the run still due."""
        ...

    def cooldown_until(self, finished_at: datetime) -> datetime:
        """End of the quiet period that a manual run imposes on the timer, counted from when it ended."""
        ...

    def cooldown_after_restart(self, not_before: datetime | None, *, manual_end: datetime | None) -> datetime | None:
        """The saved end of a cooldown, counted again with this schedule's cooldown if the last run was manual."""
        ...


def first_runs(timing: Timing, count: int, *, start: datetime) -> tuple[datetime, ...]:
    """The first ``count`` automatic runs of a service started at ``start`` with no run on record, each run
    starting the moment it is due (what ``check`` shows)."""
    runs: list[datetime] = []
    last: datetime | None = None
    now = start
    for _ in range(count):
        due = timing.next_run_at(last_run_at=last, not_before=None, now=now)
        last = now = max(due, now)
        runs.append(last)
    return tuple(runs)


class Cooldown:
    """What every schedule does with its ``cooldown`` after a manual run (the interval's and the calendar's)."""

    __slots__ = ()
    cooldown: timedelta

    def cooldown_until(self, finished_at: datetime) -> datetime:
        """End of the quiet period that a manual run imposes on the timer, counted from when it ended."""
        return finished_at + self.cooldown

    def cooldown_after_restart(self, not_before: datetime | None, *, manual_end: datetime | None) -> datetime | None:
        """The saved end of a cooldown, counted again with this schedule's cooldown if the last run was manual
        (``manual_end``: when it ended): a service restarted with another ``--cooldown`` applies it to the run
        that is already over, as it would to the next one. Otherwise the saved end is kept (an older manual
        run's, already past when an automatic run followed it)."""
        return not_before if manual_end is None else self.cooldown_until(manual_end)


@dataclass(frozen=True, slots=True)
class Schedule(Cooldown):
    """The automatic schedule: every ``interval``, and no sooner than ``cooldown`` after a manual run."""

    interval: timedelta
    cooldown: timedelta

    def next_run_at(
        self,
        *,
        last_run_at: datetime | None,
        not_before: datetime | None,
        now: datetime,
    ) -> datetime:
        """The moment the next automatic run is due.

        ``last_run_at`` is when the last run *started* (whatever its outcome); ``not_before`` is the end of
        the cooldown that the last manual run imposed. With no run on record a run is due at once, and a
        run that fell due while nobody was looking is due now, once: the result is never a list of missed
        slots, only the one next moment.
        """
        due = now if last_run_at is None else last_run_at + self.interval
        if not_before is not None and not_before > due:
            due = not_before
        return due


@dataclass(frozen=True, slots=True)
class OnDemand(Cooldown):
    """No automatic runs: a job that runs on triggers (and after other jobs) only. Its cooldown still holds
    for the record, but nothing automatic waits for it."""

    cooldown: timedelta


def minutes_until(due: datetime, now: datetime) -> int:
    """Whole minutes left, rounded up so "in 1 minute" lasts until the run is due, and never negative."""
    seconds = (due - now).total_seconds()
    return max(0, math.ceil(seconds / 60))
