"""When the next automatic run is due. Pure: every function takes ``now`` and touches nothing else."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Schedule:
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

    def cooldown_until(self, finished_at: datetime) -> datetime:
        """End of the quiet period that a manual run imposes on the timer, counted from when it ended."""
        return finished_at + self.cooldown

    def cooldown_after_restart(self, not_before: datetime | None, *, manual_end: datetime | None) -> datetime | None:
        """The saved end of a cooldown, counted again with this schedule's cooldown if the last run was manual
        (``manual_end``: when it ended): a service restarted with another ``--cooldown`` applies it to the run
        that is already over, as it would to the next one. Otherwise the saved end is kept (an older manual
        run's, already past when an automatic run followed it)."""
        return not_before if manual_end is None else self.cooldown_until(manual_end)


def minutes_until(due: datetime, now: datetime) -> int:
    """Whole minutes left, rounded up so "in 1 minute" lasts until the run is due, and never negative."""
    seconds = (due - now).total_seconds()
    return max(0, math.ceil(seconds / 60))
