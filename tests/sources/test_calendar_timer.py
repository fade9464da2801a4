"""The timer on a calendar schedule, on a fake clock moved a minute at a time through both daylight-saving days of
Europe/Berlin: it fires at each time once, skips none and doubles none, and a first start waits for the first
time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.core.calendar import CronSchedule
from orchestrator.core.clock import FakeClock
from orchestrator.core.events import Source, Trigger
from orchestrator.sources.timer import IntervalTimer
from tests.fakes import settle

BERLIN = ZoneInfo("Europe/Berlin")


async def fired(expression: str, start: datetime, until: datetime) -> list[Trigger]:
    """What the timer puts on the queue from a service's start at ``start`` until ``until``; each trigger's run
    starts at once (it becomes the last run) and ends before the next minute."""
    clock = FakeClock(start.astimezone(UTC))
    schedule = CronSchedule(expression, BERLIN, timedelta(minutes=5), since=clock.now())
    queue: asyncio.Queue[Trigger] = asyncio.Queue()
    last: list[datetime | None] = [None]

    def due() -> tuple[datetime | None, object]:
        return schedule.next_run_at(last_run_at=last[0], not_before=None, now=clock.now()), (last[0],)

    timer = IntervalTimer(queue, clock, due)
    task = asyncio.create_task(timer.serve())
    triggers: list[Trigger] = []
    try:
        while clock.now() <= until:
            await settle(10)
            while not queue.empty():
                trigger = queue.get_nowait()
                triggers.append(trigger)
                last[0] = trigger.at
                timer.reschedule()
            clock.advance(timedelta(minutes=1))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return triggers


def shown(triggers: list[Trigger]) -> list[str]:
    return [t.at.astimezone(BERLIN).isoformat(timespec="minutes") for t in triggers]


@pytest.mark.parametrize(
    ("expression", "start", "until", "expected"),
    [
        (
            "30 2 * * *",
            "2026-03-28T02:30:30+01:00",
            "2026-03-31T00:00+02:00",
            ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"],
        ),
        (
            "30 2 * * *",
            "2026-10-24T02:30:30+02:00",
            "2026-10-27T00:00+01:00",
            ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
        ),
        (
            "30 7 * * 1-5",
            "2026-03-27T08:00+01:00",
            "2026-03-31T12:00+02:00",
            ["2026-03-30T07:30+02:00", "2026-03-31T07:30+02:00"],
        ),
        (
            "30 7 * * 1-5",
            "2026-10-23T08:00+02:00",
            "2026-10-27T12:00+01:00",
            ["2026-10-26T07:30+01:00", "2026-10-27T07:30+01:00"],
        ),
    ],
)
async def test_the_timer_fires_once_at_each_time_across_daylight_saving(
    expression: str, start: str, until: str, expected: list[str]
) -> None:
    triggers = await fired(expression, datetime.fromisoformat(start), datetime.fromisoformat(until))
    assert shown(triggers) == expected
    assert {t.source for t in triggers} == {Source.TIMER}, "started 30 s after a time: a first start waits"


@pytest.mark.parametrize(("day", "runs"), [("2026-03-29", 23), ("2026-10-25", 25)])
async def test_an_hourly_timer_fires_every_real_hour_of_both_days(day: str, runs: int) -> None:
    midnight = datetime.fromisoformat(day).replace(tzinfo=BERLIN)
    start, until = midnight - timedelta(minutes=30), midnight + timedelta(days=1, minutes=30)
    triggers = await fired("0 * * * *", start, until)
    assert len(triggers) == runs + 1  # the day's, and midnight after it
    assert {b.at - a.at for a, b in itertools.pairwise(triggers)} == {timedelta(hours=1)}
    assert triggers[0].at == midnight, "the first at the day's midnight, the last at the next"
