"""The estimated finish: the pure estimate as a table (from progress and history, and from steps), then the status
document's ``eta`` on a fake clock, with the durations and steps of earlier runs read from a real run history
(SQLite) by the service itself."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from orchestrator.core import eta
from orchestrator.core.clock import FakeClock
from orchestrator.core.eta import Basis, Eta, PercentSeen, StepPlan, estimate
from orchestrator.core.events import Source, iso
from orchestrator.core.steps import STARTING, Step
from orchestrator.live import status as documents
from orchestrator.service import Orchestrator
from tests.fakes import T0, WAIT, ScriptedJob, Services, ended, minutes, settle

pytestmark = pytest.mark.service(interval=60, cooldown=0)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def ran(*steps: tuple[str, float]) -> tuple[Step, ...]:
    """A run's steps, one after the other from ``T0``: (name, seconds) each."""
    found, at = [], T0
    for name, took in steps:
        found.append(Step(name, at, at + seconds(took)))
        at += seconds(took)
    return tuple(found)


def running(*done: tuple[str, float], current: str) -> tuple[Step, ...]:
    """A running run's steps from ``T0``: those ``done``, then ``current``, begun as the last of them ended."""
    steps = ran(*done)
    return (*steps, Step(current, steps[-1].ended_at or T0 if steps else T0))


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
    ("runs", "expected"),
    [
        ([], None),
        ([()], None),  # the newest run reported no step
        ([(), ran(("a", 10))], None),  # ... even when an older one did
        ([ran((STARTING, 3))], None),  # ... or none but the start-up
        ([ran((STARTING, 1), ("a", 10), ("b", 20))], StepPlan(("a", "b"), {"a": 10, "b": 20})),
        # the median over the runs that had each name, in the newest run's order; older names are not planned
        (
            [ran(("a", 10), ("b", 20)), ran(("b", 40), ("a", 12)), ran(("a", 14), ("c", 5)), ran(("a", 99))],
            StepPlan(("a", "b"), {"a": 13, "b": 30}),
        ),
        ([ran(("a", 1), ("b", 2), ("a", 3))], StepPlan(("a", "b"), {"a": 4, "b": 2})),  # one name, its time summed
        ([ran(("a", 60))] * 10 + [ran(("a", 9999))] * 20, StepPlan(("a",), {"a": 60})),  # the newest ten only
        ([(Step("a", T0), *ran(("b", 5)))], StepPlan(("b",), {"b": 5})),  # a step without an end is no time
    ],
)
def test_a_plan_is_the_newest_runs_steps_with_median_durations(
    runs: list[tuple[Step, ...]], expected: StepPlan | None
) -> None:
    assert StepPlan.of(runs) == expected


PLAN = StepPlan(("a", "b", "c"), {"a": 10, "b": 60, "c": 20})
UP = (STARTING, 1.0)
"""The service's own first step, one second of the job's start-up."""


@pytest.mark.parametrize(
    ("steps", "percent", "percent_at", "plan", "expected"),
    [
        # in a step: its median from its start, then those after it
        (running(UP, current="a"), 0, T0 + seconds(1), PLAN, Eta(T0 + seconds(91), Basis.STEPS)),
        (running(UP, ("a", 11), current="b"), 10, T0 + seconds(12), PLAN, Eta(T0 + seconds(92), Basis.STEPS)),
        # steps beat progress: 80 % after 12 s would say 15 s in all
        (running(UP, ("a", 11), current="b"), 80, T0 + seconds(12), PLAN, Eta(T0 + seconds(92), Basis.STEPS)),
        # a step past its median ends at the last report (a new percent at 90 s), not at "now"
        (running(UP, ("a", 11), current="b"), 50, T0 + seconds(90), PLAN, Eta(T0 + seconds(110), Basis.STEPS)),
        # a percent first seen in an earlier step is no later report than this step's start; none at all neither
        (running(UP, ("a", 11), current="b"), 10, T0 + seconds(5), PLAN, Eta(T0 + seconds(92), Basis.STEPS)),
        (running(UP, ("a", 11), current="b"), None, None, PLAN, Eta(T0 + seconds(92), Basis.STEPS)),
        # steps done out of the plan's order are not to come again; the plan's steps before this one are skipped
        (running(UP, ("c", 30), current="b"), None, None, PLAN, Eta(T0 + seconds(91), Basis.STEPS)),
        (running(UP, current="c"), None, None, PLAN, Eta(T0 + seconds(21), Basis.STEPS)),
        # the last step: its median only
        (running(UP, ("a", 9), ("b", 50), current="c"), None, None, PLAN, Eta(T0 + seconds(80), Basis.STEPS)),
        # before the job's first report (its start-up): the progress, else the history
        (running(current=STARTING), 0, T0, PLAN, Eta(T0 + seconds(300), Basis.HISTORY)),
        (running(current=STARTING), 50, T0 + seconds(10), PLAN, Eta(T0 + seconds(20), Basis.PROGRESS)),
        # a step the plan does not know: likewise
        (running(UP, current="new"), 50, T0 + seconds(10), PLAN, Eta(T0 + seconds(20), Basis.PROGRESS)),
        (running(UP, current="new"), None, None, PLAN, Eta(T0 + seconds(300), Basis.HISTORY)),
        # a plan of one step says less than the job's percent
        (
            running(UP, current="w"),
            50,
            T0 + seconds(10),
            StepPlan(("w",), {"w": 100}),
            Eta(T0 + seconds(20), Basis.PROGRESS),
        ),
        # no plan, or no steps: as before
        (running(UP, current="a"), None, None, None, Eta(T0 + seconds(300), Basis.HISTORY)),
        ((), None, None, PLAN, Eta(T0 + seconds(300), Basis.HISTORY)),
    ],
)
def test_estimate_from_steps(
    steps: tuple[Step, ...],
    percent: float | None,
    percent_at: datetime | None,
    plan: StepPlan | None,
    expected: Eta,
) -> None:
    found = estimate(
        started_at=T0, percent=percent, percent_at=percent_at, recent_durations=[300.0], steps=steps, plan=plan
    )
    assert found == expected


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
    service.unit.publish()
    assert service.hub.latest()[0] == version, "a tick alone is not a new event"
    sent = documents.with_clock(service.hub.latest()[1], clock.now())
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
    assert service.unit.estimator.durations == ()
    assert service.status()["eta"] is None
    clock.advance(minutes(4))
    second.finish()
    await ended(service, second)
    await service.request_run(Source.HTTP)
    third = await job.next_start()
    doc = await published(service, lambda d: d["running"] and d["eta"] is not None)
    assert service.unit.estimator.durations == (240.0,)
    assert doc["eta"]["finishAt"] == iso(clock.now() + minutes(4))
    third.finish()
    await ended(service, third)


async def test_eta_from_steps_kept_as_runs_end_and_read_at_start(
    service: Orchestrator, services: Services, clock: FakeClock, job: ScriptedJob
) -> None:
    first = await job.next_start()
    first.report(0, "fetch")
    clock.advance(minutes(2))
    first.report(25, "write")
    clock.advance(minutes(6))
    first.finish()
    await ended(service, first)

    await service.request_run(Source.HTTP)
    second = await job.next_start()
    began = clock.now()
    doc = await published(service, lambda d: d["running"] and d["eta"] is not None)
    assert doc["eta"]["basis"] == "history", "its start-up: the job has said nothing yet"
    second.report(0, "fetch")
    doc = await published(service, lambda d: d["progress"]["step"] == "fetch")
    assert doc["eta"] == {"finishAt": iso(began + minutes(8)), "secondsLeft": 480.0, "basis": "steps"}
    clock.advance(minutes(1))
    second.report(25, "write")  # a quick fetch: 6 min from now, where the percent would say 3
    doc = await published(service, lambda d: d["progress"]["step"] == "write")
    assert doc["eta"] == {"finishAt": iso(began + minutes(7)), "secondsLeft": 360.0, "basis": "steps"}
    clock.advance(minutes(10))
    second.finish()
    await ended(service, second)
    await service.stop()

    # A new service reads the steps of the last runs from the history once, at start.
    restarted = await services.start()
    await restarted.unit.recent.ready()
    await restarted.request_run(Source.HTTP)
    third = await job.next_start()
    third.report(25, "write")
    doc = await published(restarted, lambda d: d["progress"]["step"] == "write")
    assert doc["eta"]["basis"] == "steps"
    assert doc["eta"]["finishAt"] == iso(clock.now() + minutes(8)), "the median of 6 and 10 min"
    third.finish()
    await ended(restarted, third)
