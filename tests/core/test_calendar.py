"""Calendar schedules are pure: tables of (last run, cooldown end, now) -> next due time, and of the runs a
service that never stops makes across both daylight-saving days of Europe/Berlin in 2026 (clocks go from 02:00
to 03:00 on 29 March and from 03:00 back to 02:00 on 25 October), each run starting the moment it is due."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.core.calendar import CronSchedule, bad_cron
from orchestrator.core.schedule import Schedule, Timing, first_runs

BERLIN = ZoneInfo("Europe/Berlin")
M = timedelta(minutes=1)
H = timedelta(hours=1)


def berlin(text: str) -> datetime:
    """A moment written as Berlin's clocks show it, with its offset: ``2026-10-25T02:30+02:00``."""
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == moment.astimezone(BERLIN).utcoffset(), f"{text} is not a time Berlin shows"
    return moment.astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(expression: str, cooldown: timedelta = 5 * M, since: datetime | None = None) -> CronSchedule:
    return CronSchedule(expression, BERLIN, cooldown, since)


def walk(schedule: Timing, last: datetime, until: datetime) -> list[datetime]:
    """The runs of a service that never stops, from a run at ``last`` until ``until``: each starts when due."""
    runs = []
    while (due := schedule.next_run_at(last_run_at=last, not_before=None, now=last)) < until:
        runs.append(due)
        last = due
    return runs


def shown(runs: list[datetime]) -> list[str]:
    return [run.astimezone(BERLIN).isoformat(timespec="minutes") for run in runs]


@pytest.mark.parametrize(
    ("expression", "last", "until", "expected", "why"),
    [
        (
            "30 2 * * *",
            "2026-03-27T12:00+01:00",
            "2026-03-31T00:00+02:00",
            ["2026-03-28T02:30+01:00", "2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"],
            "spring forward: 02:30 does not exist on the 29th; it runs at 03:00, once, not skipped",
        ),
        (
            "30 2 * * *",
            "2026-10-23T12:00+02:00",
            "2026-10-27T00:00+01:00",
            ["2026-10-24T02:30+02:00", "2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
            "fall back: 02:30 comes twice on the 25th; it runs at the first, once, not doubled",
        ),
        (
            "30 7 * * 1-5",
            "2026-03-26T12:00+01:00",
            "2026-03-31T12:00+02:00",
            ["2026-03-27T07:30+01:00", "2026-03-30T07:30+02:00", "2026-03-31T07:30+02:00"],
            "weekdays at 07:30 on the wall clock, before and after the spring weekend",
        ),
        (
            "30 7 * * 1-5",
            "2026-10-22T12:00+02:00",
            "2026-10-27T12:00+01:00",
            ["2026-10-23T07:30+02:00", "2026-10-26T07:30+01:00", "2026-10-27T07:30+01:00"],
            "weekdays at 07:30 on the wall clock, before and after the autumn weekend",
        ),
        (
            "0 2-3 * * *",
            "2026-03-28T12:00+01:00",
            "2026-03-30T00:00+02:00",
            ["2026-03-29T03:00+02:00"],
            "02:00 moves to 03:00, where the 03:00 run is: one run, not two",
        ),
    ],
)
def test_fixed_times_run_once_a_day_across_daylight_saving(
    expression: str, last: str, until: str, expected: list[str], why: str
) -> None:
    assert shown(walk(cron(expression), berlin(last), berlin(until))) == expected, why


@pytest.mark.parametrize(
    ("expression", "day", "runs_that_day", "step"),
    [
        ("0 * * * *", "2026-03-29", 23, H),
        ("0 * * * *", "2026-10-25", 25, H),
        ("*/30 * * * *", "2026-03-29", 46, 30 * M),
        ("*/30 * * * *", "2026-10-25", 50, 30 * M),
    ],
)
def test_wildcard_hours_follow_real_time_on_both_transition_days(
    expression: str, day: str, runs_that_day: int, step: timedelta
) -> None:
    """Every hour is every hour that passes: none skipped in the gap, none doubled in the repeated hour."""
    start = datetime.fromisoformat(day).replace(tzinfo=BERLIN)
    runs = walk(cron(expression), start - step, start + timedelta(days=1, hours=1))
    that_day = [run for run in runs if run.astimezone(BERLIN).date() == start.date()]
    assert len(that_day) == runs_that_day
    assert {b - a for a, b in itertools.pairwise(runs)} == {step}
    assert len(set(runs)) == len(runs)


SPRING = cron("30 2 * * *")
AUTUMN_LAST = berlin("2026-10-25T02:30+02:00")  # the first 02:30 of the fall-back day


@pytest.mark.parametrize(
    ("last", "not_before", "now", "expected", "why"),
    [
        ("2026-03-28T02:30+01:00", None, "2026-03-28T09:00+01:00", "2026-03-29T03:00+02:00", "the day the gap holds"),
        ("2026-03-28T02:30+01:00", None, "2026-03-29T12:00+02:00", "2026-03-29T03:00+02:00", "missed: due now"),
        ("2026-03-25T02:30+01:00", None, "2026-03-29T12:00+02:00", "2026-03-26T02:30+01:00", "4 missed: due now, once"),
        ("2026-03-29T12:00+02:00", None, "2026-03-29T12:00+02:00", "2026-03-30T02:30+02:00", "the catch-up ran"),
        ("2026-10-25T02:30+02:00", None, "2026-10-25T02:29+01:00", "2026-10-26T02:30+01:00", "no second 02:30"),
        ("2026-10-25T02:10+01:00", None, "2026-10-25T02:10+01:00", "2026-10-26T02:30+01:00", "after the first 02:30"),
        ("2026-10-25T02:50+02:00", None, "2026-10-25T02:00+01:00", "2026-10-26T02:30+01:00", "manual, 1st hour"),
        (
            "2026-03-27T02:30+01:00",
            "2026-03-28T02:45+01:00",
            "2026-03-28T02:40+01:00",
            "2026-03-28T02:45+01:00",
            "a manual run's cooldown pushes the time back",
        ),
        (
            "2026-03-27T02:30+01:00",
            "2026-03-28T01:00+01:00",
            "2026-03-28T00:40+01:00",
            "2026-03-28T02:30+01:00",
            "a cooldown that ends before the time changes nothing",
        ),
    ],
)
def test_next_run_at_after_a_run(last: str, not_before: str | None, now: str, expected: str, why: str) -> None:
    bound = berlin(not_before) if not_before else None
    due = SPRING.next_run_at(last_run_at=berlin(last), not_before=bound, now=berlin(now))
    assert shown([due]) == shown([berlin(expected)]), why
    assert due.tzinfo is UTC


@pytest.mark.parametrize(
    ("since", "now", "expected", "why"),
    [
        ("2026-01-20T07:29:30", "2026-01-20T07:29:30", "2026-01-20T07:30", "a first start waits for the first time"),
        ("2026-01-20T07:29:30", "2026-01-20T07:30:00.400", "2026-01-20T07:30", "and finds it due when it comes"),
        ("2026-01-20T07:29:30", "2026-01-20T09:00", "2026-01-20T07:30", "also when the timer woke up late"),
        ("2026-01-20T07:30:20", "2026-01-20T07:30:20", "2026-01-21T07:30", "started 20 s after a time: tomorrow's"),
        (None, "2026-01-20T07:29:30", "2026-01-20T07:30", "without since: the next time"),
        (None, "2026-01-20T07:30:20", "2026-01-20T07:30", "whose minute has not passed: cron's own resolution"),
        (None, "2026-01-20T07:31:00", "2026-01-21T07:30", "a minute later it has"),
    ],
)
def test_a_first_start_waits_for_the_first_time(since: str | None, now: str, expected: str, why: str) -> None:
    schedule = CronSchedule("30 7 * * *", UTC, 5 * M, utc(since) if since else None)
    assert schedule.next_run_at(last_run_at=None, not_before=None, now=utc(now)) == utc(expected), why


def test_cooldowns_are_the_interval_schedules() -> None:
    at = utc("2026-01-20T10:00")
    schedule, interval = cron("0 3 * * *", cooldown=7 * M), Schedule(30 * M, 7 * M)
    assert schedule.cooldown_until(at) == interval.cooldown_until(at) == at + 7 * M
    for saved, manual_end in [(at + 5 * M, at), (at + 5 * M, None), (None, None)]:
        expected = interval.cooldown_after_restart(saved, manual_end=manual_end)
        assert schedule.cooldown_after_restart(saved, manual_end=manual_end) == expected


def test_next_times_are_on_the_zones_clock() -> None:
    times = cron("30 7 * * 1-5").next_times(3, berlin("2026-03-27T08:00+01:00"))
    assert [t.isoformat() for t in times] == [
        "2026-03-30T07:30:00+02:00",
        "2026-03-31T07:30:00+02:00",
        "2026-04-01T07:30:00+02:00",
    ]


def test_first_runs_of_each_kind() -> None:
    start = utc("2026-01-20T10:00:30")
    assert first_runs(Schedule(30 * M, 5 * M), 3, start=start) == (start, start + 30 * M, start + 60 * M)
    daily = CronSchedule("0 6 * * *", UTC, 5 * M, since=start)
    assert first_runs(daily, 3, start=start) == tuple(utc(f"2026-01-{d}T06:00") for d in (21, 22, 23))


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("30 7 * * 1-5", None),
        ("*/15 9-17 * * mon-fri", None),
        ("0 0 29 2 *", None),
        ("0 0 L * *", None),
        ("61 * * * *", "minute 61 is out of range (0-59)"),
        ("0 24 * * *", "hour 24 is out of range (0-23)"),
        ("0 0 0 * *", "day-of-month 0 is out of range (1-31)"),
        ("0 0 1 13 *", "month 13 is out of range (1-12)"),
        ("0 0 * * 8", "day-of-week 8 is out of range (0-7)"),
        ("0 1-70/5 * * *", "hour 70 is out of range (0-23)"),
        ("0 0 30 2 *", "none of its months has a day 30"),
        ("*/0 * * * *", "bad minute field '*/0'"),
        ("5-1 * * * *", "bad minute field '5-1'"),
        ("x * * * *", "bad minute field 'x'"),
        ("* * * *", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 4"),
        ("0 * * * * *", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 6"),
        ("@daily", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 1"),
        ("", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 0"),
    ],
)
def test_bad_cron_says_why(expression: str, reason: str | None) -> None:
    assert bad_cron(expression) == reason


def test_a_bad_expression_is_no_schedule() -> None:
    with pytest.raises(ValueError, match=r"bad cron expression '61 \* \* \* \*': minute 61 is out of range"):
        cron("61 * * * *")
