"""Calendar schedules: a cron expression in a named time zone. cronsim reads the expression and finds its times;
this module decides which of them is due. Pure: every method takes the moment it answers for.

Daylight saving follows Debian's cron (cronsim keeps its rules), which is what people expect of a crontab:

- an expression with a fixed minute and hour (``30 2 * * *``, ``0 7,19 * * 1-5``) is read on the zone's wall
  clock: a time the day skips (02:30 on the spring-forward day) runs at the first minute after the gap (03:00),
  once; a time the day has twice (02:30 on the fall-back day) runs at the first of the two only;
- an expression with a wildcard or a step in its minute or hour (``0 * * * *``, ``*/15 9-17 * * *``) follows
  real time: every hour is every hour that passes, 23 of them on the spring-forward day and 25 on the fall-back
  day.

An occurrence is due only when it comes after the last run in real time, so none runs twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from orchestrator.core.schedule import Cooldown

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
"""The five fields of an expression, as cronsim names them, with the numbers each takes."""
SEARCH_FROM = datetime(2000, 1, 1, tzinfo=UTC)
"""Where :func:`bad_cron` looks for a first time: cronsim gives up after 50 years, and the calendar (leap years
and weekdays) repeats every 28 years until 2100, so an expression with no time by 2050 has none at all."""


class NoOccurrence(ValueError):
    """The expression has no time left (cronsim looks 50 years ahead)."""

    def __init__(self, expression: str, after: datetime) -> None:
        super().__init__(f"cron expression {expression!r} has no time within 50 years after {after.isoformat()}")


def bad_cron(expression: str) -> str | None:
    """Why ``expression`` is no cron expression we run (``minute 61 is out of range (0-59)``); ``None`` if it is.
    Five fields only: cronsim also reads a sixth (seconds), but its daylight-saving rules are cron's for five."""
    from cronsim import CronSim, CronSimError  # a service with no calendar job never needs it

    fields = expression.split()
    if len(fields) != len(FIELDS):
        names = " ".join(name for name, _, _ in FIELDS)
        return f"a cron expression has 5 fields ({names}), this one has {len(fields)}"
    try:
        next(CronSim(expression, SEARCH_FROM))
    except CronSimError as exc:
        return _why(fields, str(exc))
    except StopIteration:
        return "it names no time that ever comes"
    return None


def _why(fields: list[str], message: str) -> str:
    """cronsim's "Bad minute", said with the number that is wrong where there is one."""
    for index, (name, low, high) in enumerate(FIELDS):
        if message == f"Bad {name}":
            text = fields[index]
            numbers = [int(n) for n in re.findall(r"\d+", text.split("/")[0])]  # a step is no value of the field
            outside = [n for n in numbers if not low <= n <= high]
            if outside:
                return f"{name} {outside[0]} is out of range ({low}-{high})"
            if name == "day-of-month" and numbers:
                return f"none of its months has a day {min(numbers)}"
            return f"bad {name} field {text!r}"
    return message


@dataclass(frozen=True, slots=True)
class CronSchedule(Cooldown):
    """Runs at the times of a cron ``expression`` on the clock of ``zone``, and no sooner than ``cooldown``
    after a manual run. A :class:`~orchestrator.core.schedule.Timing`, like the interval ``Schedule``.

    Unlike the interval schedule, a first start does not run at once: the job waits for its first time. A time
    that came while the service was down is due at once, once, however many came (the first after the last
    run is the due time; the run that follows moves the last run past all of them)."""

    expression: str
    zone: tzinfo
    cooldown: timedelta
    since: datetime | None = None
    """When the schedule began (the service started, or the job was added): with no run on record, the first
    time after it is due, also when the service looks again after it has come. ``None``: the first time whose
    minute has not passed yet (a start within the minute of a time runs it, as cron would have a moment ago)."""

    def __post_init__(self) -> None:
        if (why := bad_cron(self.expression)) is not None:
            raise ValueError(f"bad cron expression {self.expression!r}: {why}")

    def next_run_at(self, *, last_run_at: datetime | None, not_before: datetime | None, now: datetime) -> datetime:
        """The first time after the last run *started* (whatever its outcome); with no run on record, the first
        after ``since``. In the past when it came while nobody was looking: due now, once. Never before
        ``not_before``, the end of the cooldown that the last manual run imposed."""
        if last_run_at is not None:
            due = self.occurrence_after(last_run_at)
        elif self.since is not None:
            due = self.occurrence_after(self.since)
        else:
            due = self.occurrence_after(now.replace(second=0, microsecond=0) - timedelta(microseconds=1))
        if not_before is not None and not_before > due:
            due = not_before
        return due

    def occurrence_after(self, moment: datetime) -> datetime:
        """The expression's first time strictly after ``moment`` in real time, in UTC."""
        from cronsim import CronSim

        after = moment.astimezone(UTC)
        for found in CronSim(self.expression, moment.astimezone(self.zone)):
            # On the fall-back day cron's wall-clock reading may answer the first 02:30 for a moment in the
            # second hour 02:xx, which has passed: compared in UTC, it is skipped for the next day's.
            if (at := found.astimezone(UTC)) > after:
                return at
        raise NoOccurrence(self.expression, moment)

    def next_times(self, count: int, after: datetime) -> tuple[datetime, ...]:
        """The next ``count`` times after ``after``, on the zone's clock (what ``check`` prints)."""
        times: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = self.occurrence_after(moment)
            times.append(moment.astimezone(self.zone))
        return tuple(times)
