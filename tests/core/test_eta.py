"""The estimated finish: the pure estimate as a table, then the status document's ``eta`` on a fake clock, with
the durations of earlier runs read from a real run history (SQLite) by the service itself."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from orchestrator.core import eta
from orchestrator.core.clock import FakeClock
from orchestrator.core.eta import Basis, Eta, PercentSeen, estimate
from orchestrator.core.events import Source, iso
from orchestrator.service import Orchestrator
from tests.fakes import T0, WAIT, ScriptedJob, ended, minutes, settle

pytestmark = pytest.mark.service(interval=60, cooldown=0)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.mark.parametrize(
    ("percent", "percent_at", "durations", "expected"),
    [
        # nothing to go on
        (None, None, [], None),
        (0, T0 + minutes(1), [], None),
        # progress: 25% after 5 min -> 20 min in all
        (25, T0 + minutes(5), [], Eta(T0 + minutes(20), Basis.PROGRESS)),
        (50, T0 + minutes(5), [600.0], Eta(T0 + minutes(10), Basis.PROGRESS)),  # progress beats history
        (100, T0 + minutes(7), [], Eta(T0 + minutes(7), Basis.PROGRESS)),
        (5, T0 + seconds(5), [], Eta(T0 + seconds(100), Basis.PROGRESS)),  # both floors met exactly
        # too early to trust the rate: history if any, else nothing
        (4.9, T0 + minutes(5), [], None),  # under 5%
        (10, T0 + seconds(4.9), [], None),  # under 5 s (a job that says 10% as soon as it connects)
        (10, T0 + seconds(1), [300.0], Eta(T0 + minutes(5), Basis.HISTORY)),
        (None, None, [300.0], Eta(T0 + minutes(5), Basis.HISTORY)),
        # history: the median (one run that hung does not move it), newest ten only, unusable ones skipped
        (None, None, [100.0, 3600.0, 120.0], Eta(T0 + seconds(120), Basis.HISTORY)),
        (None, None, [100.0, 200.0], Eta(T0 + seconds(150), Basis.HISTORY)),
        (None, None, [60.0] * 10 + [9999.0] * 20, Eta(T0 + minutes(1), Basis.HISTORY)),
        (None, None, [0.0, -5.0, 90.0], Eta(T0 + seconds(90), Basis.HISTORY)),
        (None, None, [0.0], None),
    ],
)
def test_estimate(
    percent: float | None, percent_at: datetime | None, durations: list[float], expected: Eta | None
) -> None:
    assert estimate(started_at=T0, percent=percent, percent_at=percent_at, recent_durations=durations) == expected


@pytest.mark.parametrize(
    ("now", "left"),
    [(T0, 600.0), (T0 + seconds(599.94), 0.1), (T0 + minutes(10), 0.0), (T0 + minutes(30), 0.0)],
)
def test_seconds_left_counts_down_and_stops_at_zero(now: datetime, left: float) -> None:
    estimate_ = Eta(T0 + minutes(10), Basis.HISTORY)
    assert estimate_.seconds_left(now) == left
    assert estimate_.to_json(now) == {"finishAt": iso(T0 + minutes(10)), "secondsLeft": left, "basis": "history"}
    assert eta.with_clock(estimate_.to_json(T0), now) == estimate_.to_json(now)


def test_clock_helpers_leave_anything_else_alone() -> None:
    assert eta.with_clock(None, T0) is None
    assert eta.with_clock({"finishAt": "garbage", "secondsLeft": 3}, T0) == {"finishAt": "garbage", "secondsLeft": 3}
    assert eta.without_clock({"finishAt": "x", "secondsLeft": 3, "basis": "progress"}) == {
        "finishAt": "x",
        "basis": "progress",
    }
    assert eta.without_clock(None) is None


def test_percent_seen_keeps_the_first_time_of_each_percent() -> None:
    seen = PercentSeen()
    assert seen.seen("a", 10, T0) == T0
    assert seen.seen("a", 10, T0 + minutes(1)) == T0, "the same report looked at again"
    assert seen.seen("a", 20, T0 + minutes(2)) == T0 + minutes(2)
    assert seen.seen("b", 20, T0 + minutes(3)) == T0 + minutes(3), "another run"


# ----------------------------------------------------------------------------- the status document
async def published(service: Orchestrator, predicate: Any) -> dict[str, Any]:
    """The first published status (the latest, or a later one) that satisfies ``predicate``; bounded."""
    version, doc = service.hub.latest()
    async with asyncio.timeout(WAIT):
        while not predicate(doc):
            version, doc = await service.hub.next_after(version)
    return doc


async def test_eta_from_progress_then_from_history(service: Orchestrator, clock: FakeClock, job: ScriptedJob) -> None:
    first = await job.next_start()
    assert service.status()["eta"] is None, "no progress and no history yet"
    clock.advance(minutes(2))
    first.report(20, "a fifth")
    doc = await published(service, lambda d: d["eta"] is not None)
    assert doc["eta"] == {"finishAt": iso(T0 + minutes(10)), "secondsLeft": 480.0, "basis": "progress"}

    # Time passes with no report: secondsLeft moves when a document is sent, finishAt stays, and that is no news.
    version, _ = service.hub.latest()
    clock.advance(minutes(3))
    service.publish()
    assert service.hub.latest()[0] == version, "a tick alone is not a new event"
    sent = service.with_clock(service.hub.latest()[1])
    assert sent["eta"]["secondsLeft"] == 300.0 and sent["eta"]["finishAt"] == iso(T0 + minutes(10))
    assert service.status()["eta"]["secondsLeft"] == 300.0

    clock.advance(minutes(7))  # T0+12: first run took 12 min
    first.finish()
    await ended(service, first)
    assert service.status()["eta"] is None, "idle"

    # The next run reports nothing: the history (read by the service from its SQLite file) says 12 min.
    clock.advance(minutes(48))
    second = await job.next_start()
    assert second.ctx.source is Source.TIMER
    doc = await published(service, lambda d: d["running"] and d["eta"] is not None)
    assert doc["eta"]["basis"] == "history"
    assert doc["eta"]["finishAt"] == iso(T0 + minutes(60 + 12))
    second.finish()
    await ended(service, second)


async def test_failed_and_cancelled_runs_do_not_count(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    from orchestrator.core.events import RunStatus

    first = await job.next_start()
    clock.advance(minutes(30))
    first.finish(RunStatus.ERROR, exit_code=1, error="boom")
    await ended(service, first)
    await service.request_run(Source.HTTP)
    second = await job.next_start()
    await settle()
    assert service.estimator.durations == ()
    assert service.status()["eta"] is None
    clock.advance(minutes(4))
    second.finish()
    await ended(service, second)
    await service.request_run(Source.HTTP)
    third = await job.next_start()
    doc = await published(service, lambda d: d["running"] and d["eta"] is not None)
    assert service.estimator.durations == (240.0,)
    assert doc["eta"]["finishAt"] == iso(clock.now() + minutes(4))
    third.finish()
    await ended(service, third)
