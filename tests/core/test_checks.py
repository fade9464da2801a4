"""Missed-run checks: the pure rules as tables on plain values, then the live side (``checks`` in the status
document, the "long" moment found on a fake clock) in an orchestrator with a scripted job."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.core.checks import (
    CheckKind,
    Thresholds,
    finished_fast,
    human,
    overdue,
    recent_durations,
    run_checks,
    running_long,
    started_late,
    usual_duration,
)
from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger, iso
from orchestrator.core.records import RunRecord
from orchestrator.http import pause
from orchestrator.service import Orchestrator
from tests.fakes import T0, ScriptedJob, Services, ended, minutes, settle

pytestmark = pytest.mark.service(interval=30, cooldown=0)


def run(
    *sources: Source,
    started: float = 0,
    took: float | None = None,
    status: RunStatus = RunStatus.COMPLETED,
    run_id: str = "r1",
) -> RunRecord:
    """A run started ``started`` minutes after T0 that took ``took`` minutes (``None``: still running)."""
    start = T0 + minutes(started)
    return RunRecord(
        run_id=run_id,
        triggers=tuple(Trigger(s, start) for s in sources or (Source.TIMER,)),
        started_at=start,
        status=RunStatus.RUNNING if took is None else status,
        finished_at=None if took is None else start + minutes(took),
    )


GRACE = minutes(5)


@pytest.mark.parametrize(
    ("sources", "due_minutes", "started", "late"),
    [
        ((Source.TIMER,), 0, 0, False),  # on time
        ((Source.TIMER,), 0, 5, False),  # exactly the grace: not yet late
        ((Source.TIMER,), 0, 5.5, True),
        ((Source.STARTUP,), 0, 40, True),  # the service was down when it was due
        ((Source.HTTP,), 0, 40, False),  # a manual run is never late
        ((Source.HTTP, Source.TIMER), 0, 40, True),  # a timer trigger folded into it: the schedule waited
        ((Source.TIMER,), None, 40, False),  # due time unknown
    ],
)
def test_started_late(sources: tuple[Source, ...], due_minutes: float | None, started: float, late: bool) -> None:
    due = None if due_minutes is None else T0 + minutes(due_minutes)
    check = started_late(run(*sources, started=started), due, GRACE)
    assert (check is not None) == late
    if check is not None:
        assert check.kind is CheckKind.LATE
        assert check.since == T0 + GRACE
        assert check.message == f"run r1 started {human(started * 60)} late (due at 10:00 UTC)"
    assert started_late(run(*sources, started=started), due, None) is None  # the check is off


@pytest.mark.parametrize(
    ("now_minutes", "paused", "running", "late"),
    [
        (4, False, False, False),
        (6, False, False, True),  # the service was down or the timer did not fire
        (6, True, False, False),  # paused: an overdue timer is what was asked for
        (6, False, True, True),  # a run still going keeps the next one from starting
    ],
)
def test_overdue(now_minutes: float, paused: bool, running: bool, late: bool) -> None:
    current = run(started=-40, run_id="long-one") if running else None
    check = overdue(T0, T0 + minutes(now_minutes), GRACE, paused=paused, running=current)
    assert (check is not None) == late
    if check is not None:
        assert check.run_id is None
        assert check.since == T0 + GRACE
        assert "the run due at 10:00 UTC has not started" in check.message
        assert check.since == T0 + GRACE
        assert ("long-one is still running" in check.message) == running


USUAL = 600.0  # ten minutes


@pytest.mark.parametrize(
    ("took", "now_minutes", "factor", "long"),
    [
        (None, 19, 2, False),  # running, not yet twice the usual
        (None, 21, 2, True),  # running past twice the usual
        (25, 30, 2, True),  # finished after 25 min
        (15, 30, 2, False),
        (None, 100, 0, False),  # off
    ],
)
def test_running_long(took: float | None, now_minutes: float, factor: float, long: bool) -> None:
    check = running_long(run(took=took), T0 + minutes(now_minutes), USUAL, factor)
    assert (check is not None) == long
    if check is not None:
        assert check.since == T0 + minutes(20)
        verb = "has been running for over 20 min" if took is None else "took 25 min"
        assert check.message == f"run r1 {verb}, more than 2x the usual 10 min"
    assert running_long(run(took=took), T0 + minutes(now_minutes), None, factor) is None  # no usual yet


@pytest.mark.parametrize(
    ("took", "status", "factor", "fast"),
    [
        (1, RunStatus.COMPLETED, 0.2, True),
        (2, RunStatus.COMPLETED, 0.2, False),  # exactly the fraction: not "fast"
        (1, RunStatus.ERROR, 0.2, False),  # a failure that ends early is news as a failure
        (1, RunStatus.COMPLETED, 0, False),  # off
        (None, RunStatus.RUNNING, 0.2, False),
    ],
)
def test_finished_fast(took: float | None, status: RunStatus, factor: float, fast: bool) -> None:
    check = finished_fast(run(took=took, status=status), USUAL, factor)
    assert (check is not None) == fast
    if check is not None:
        assert check.since == T0 + minutes(1)
        assert check.message == "run r1 completed in 60 s, less than 0.2x the usual 10 min"


def test_usual_needs_enough_samples_and_is_the_median() -> None:
    assert usual_duration([600, 610, 620, 630], min_samples=5) is None
    assert usual_duration([600, 610, 620, 630, 9000], min_samples=5) == 620  # one odd run does not move it


def test_recent_durations_keep_completed_runs_only_and_leave_one_out() -> None:
    records: list[dict[str, Any]] = [
        {"runId": "a", "status": "completed", "durationSeconds": 10},
        {"runId": "b", "status": "error", "durationSeconds": 1},
        {"runId": "c", "status": "completed", "durationSeconds": None},
        {"runId": "d", "status": "completed", "durationSeconds": True},
        {"runId": "e", "status": "completed", "durationSeconds": 12.5},
    ]
    assert recent_durations(records) == [10.0, 12.5]
    assert recent_durations(records, exclude="a") == [12.5]
    many = [{"runId": str(n), "status": "completed", "durationSeconds": n} for n in range(50)]
    assert recent_durations(many) == [float(n) for n in range(20)]


def test_run_checks_combines_them() -> None:
    thresholds = Thresholds(late_grace=GRACE, long_factor=2, fast_factor=0.2, min_samples=3)
    slow_and_late = run(Source.TIMER, started=10, took=30)
    found = run_checks(slow_and_late, now=T0 + minutes(50), due=T0, durations=[600] * 3, thresholds=thresholds)
    assert [c.kind for c in found] == [CheckKind.LATE, CheckKind.LONG]
    assert run_checks(slow_and_late, now=T0 + minutes(50), due=T0, durations=[600] * 2, thresholds=thresholds) == [
        started_late(slow_and_late, T0, GRACE)
    ]  # too few samples for "long"


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.25, "4.2 s"), (42, "42 s"), (89, "89 s"), (600, "10 min"), (7500, "2 h 5 min")]
)
def test_human(seconds: float, text: str) -> None:
    assert human(seconds) == text


# ------------------------------------------------------------------------------- live, on a fake clock
def kinds(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(c["kind"], c["runId"]) for c in document["checks"]]


async def test_status_shows_long_and_fast_runs_as_time_passes(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    for _ in range(5):  # five ten-minute runs make "usual"
        started = await job.next_start()
        clock.advance(minutes(10))
        started.finish()
        await ended(service, started)
        clock.advance(minutes(20))  # the next one is due
    assert service.status()["checks"] == []
    slow = await job.next_start()
    await settle()  # the start is told to the checks, which set their wake-up for "long"
    version, _ = service.hub.latest()
    clock.advance(minutes(20) + timedelta(seconds=1))  # past 2x the usual: the service says so by itself
    async with asyncio.timeout(10):
        version, document = await service.hub.next_after(version)
        while ("long", slow.ctx.run_id) not in kinds(document):
            version, document = await service.hub.next_after(version)
    [check] = document["checks"]
    assert check["message"].startswith(f"run {slow.ctx.run_id} has been running for over 20 min, more than 2x")
    slow.finish()
    await ended(service, slow)
    assert kinds(service.status()) == [("long", slow.ctx.run_id)]  # the last run's, until the next one
    clock.advance(minutes(10))  # due 30 min after the slow one started: on time
    quick = await job.next_start()
    clock.advance(minutes(1))
    quick.finish()
    await ended(service, quick)
    assert kinds(service.status()) == [("fast", quick.ctx.run_id)]


async def test_a_run_that_starts_long_after_it_was_due_is_late_but_not_after_a_pause(
    clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    first = await services.start()
    run1 = await job.next_start()
    run1.finish()
    await ended(first, run1)
    await first.stop()
    clock.advance(minutes(75))  # down for 45 min past the due time
    second = services.build()
    late_doc = second.status()  # before it starts: the overdue run is visible at once
    assert kinds(late_doc) == [("late", None)]
    assert "the run due at 10:30 UTC has not started" in late_doc["checks"][0]["message"]
    assert late_doc["checks"][0]["since"] == iso(T0 + minutes(35))  # due 10:30, grace 5 min
    await services.started(second)
    run2 = await job.next_start()
    await settle()
    [check] = second.status()["checks"]
    assert (check["kind"], check["runId"]) == ("late", run2.ctx.run_id)
    assert check["message"] == f"run {run2.ctx.run_id} started 45 min late (due at 10:30 UTC)"
    run2.finish()
    await ended(second, run2)
    # Paused: an overdue timer is what was asked for, and the run at the resume is not late for it.
    pause.pause(second, "maintenance")
    clock.advance(minutes(60))  # the next run fell due 30 min ago
    assert ("late", None) not in kinds(second.status())
    pause.resume(second)
    run3 = await job.next_start()
    await settle()
    assert kinds(second.status()) == [("late", run2.ctx.run_id)]  # the last run's; none for this one
    run3.finish()
    await ended(second, run3)


async def test_the_encoded_status_shows_a_check_the_moment_it_appears_as_time_passes(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    """The JSON answered to ``GET .../status`` is encoded once per change, yet it is always the document built
    at that moment: a check that appears with time alone is in it at once, before the service publishes it."""
    unit = service.unit

    def encoded() -> dict[str, Any]:
        document: dict[str, Any] = json.loads(unit.status_json())
        assert document == service.status()
        return document

    for _ in range(5):  # five ten-minute runs make "usual"
        started = await job.next_start()
        clock.advance(minutes(10))
        started.finish()
        await ended(service, started)
        clock.advance(minutes(20))
    slow = await job.next_start()
    await settle()
    assert kinds(encoded()) == []
    clock.advance(minutes(20))  # exactly 2x the usual: not yet more
    assert kinds(encoded()) == []
    clock.advance(timedelta(microseconds=1))
    assert kinds(encoded()) == [("long", slow.ctx.run_id)]
    slow.finish()
    await ended(service, slow)
    encoded()
    # Due at 13:00, 30 min after the slow one started (it ended at 12:50); exactly the grace late at 13:05 (no
    # await from here: the timer's run does not start).
    clock.advance(minutes(15) - timedelta(microseconds=1))
    assert ("late", None) not in kinds(encoded())
    clock.advance(timedelta(microseconds=1))
    assert ("late", None) in kinds(encoded())
