"""A run's steps: the tracker as tables of reports on a fake timeline, the step record's JSON both ways, and
(on a fake clock, with the scripted job) the steps a run keeps in the history and shows in its status."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, iso
from orchestrator.core.steps import MAX_STEPS, MORE_STEPS, Step, StepReport, StepTracker, steps_from_json
from orchestrator.service import Orchestrator
from tests.fakes import T0, ScriptedJob, ended, published

pytestmark = pytest.mark.service(interval=60, cooldown=0)

R = StepReport


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def track(reports: list[tuple[float, StepReport]], end: float, percent: float | None = None) -> tuple[Step, ...]:
    tracker = StepTracker()
    tracker.begin("Starting...", at(0))
    for seconds, report in reports:
        tracker.report(report, at(seconds))
    return tracker.finish(at(end), percent)


@pytest.mark.parametrize(
    ("reports", "end", "expected"),
    [
        # a job that never reports has no steps (not one long "Starting...")
        ([], 10, ()),
        # the line form: each new text is a new step; the service's own first step measures the start-up
        (
            [(1, R(10, "Connecting")), (3, R(40, "Fetching")), (9, R(90, "Writing"))],
            10,
            (
                Step("Starting...", at(0), at(1), 0, 0),
                Step("Connecting", at(1), at(3), 10, 10),
                Step("Fetching", at(3), at(9), 40, 40),
                Step("Writing", at(9), at(10), 90, 90),
            ),
        ),
        # the same text again, or none, goes on with the step; its percent moves, its details replace each other
        (
            [
                (1, R(10, "Fetching", "repo 1/3", 1, 3)),
                (2, R(40, "Fetching", "repo 2/3", 2)),
                (3, R(70, None, "repo 3/3", 3)),
                (4, R(None, None, "GET /pulls?page=2")),
            ],
            5,
            (
                Step("Starting...", at(0), at(1), 0, 0),
                Step("Fetching", at(1), at(5), 10, 70, "GET /pulls?page=2", 3, 3),
            ),
        ),
        # a new step starts without the last one's detail and counts
        (
            [(1, R(10, "A", "a detail", 1, 2)), (2, R(None, "B"))],
            3,
            (
                Step("Starting...", at(0), at(1), 0, 0),
                Step("A", at(1), at(2), 10, 10, "a detail", 1, 2),
                Step("B", at(2), at(3), 10, 10),
            ),
        ),
        # a detail alone, before any step of the job's, belongs to the service's first step
        (
            [(1, R(None, None, "warming up"))],
            2,
            (Step("Starting...", at(0), at(2), 0, 0, "warming up"),),
        ),
    ],
)
def test_reports_become_steps(reports: list[tuple[float, StepReport]], end: float, expected: tuple[Step, ...]) -> None:
    assert track(reports, end) == expected


def test_a_completed_run_ends_its_last_step_at_its_end_percent() -> None:
    steps = track([(1, R(95, "Writing"))], 2, percent=100)
    assert (steps[-1].percent_start, steps[-1].percent_end, steps[-1].duration_seconds) == (95, 100, 1.0)


def test_steps_beyond_the_bound_are_folded_into_one() -> None:
    reports = [(float(n), R(None, f"step {n}")) for n in range(1, 10_001)]
    steps = track(reports, 10_001)
    assert len(steps) == MAX_STEPS
    assert steps[-2].name == f"step {MAX_STEPS - 2}"
    assert (steps[-1].name, steps[-1].started_at, steps[-1].ended_at) == (MORE_STEPS, at(MAX_STEPS - 1), at(10_001))


def test_the_current_step_is_open_until_the_run_ends() -> None:
    tracker = StepTracker()
    tracker.begin("Starting...", at(0))
    assert tracker.report(R(10, "Fetching"), at(1)) is True
    assert tracker.report(R(20, "Fetching", "repo 2"), at(2)) is False
    assert tracker.steps()[-1] == Step("Fetching", at(1), None, 10, 20, "repo 2")
    assert tracker.steps()[-1].duration_seconds is None


def test_a_step_round_trips_through_json_and_damage_is_skipped() -> None:
    step = Step("Fetching", at(1), at(61.5), 10, 85.5, "repo 15/15", 15, 15)
    doc = step.to_json()
    assert doc == {
        "name": "Fetching",
        "startedAt": iso(at(1)),
        "endedAt": iso(at(61.5)),
        "durationSeconds": 60.5,
        "percentStart": 10,
        "percentEnd": 85.5,
        "detail": "repo 15/15",
        "done": 15,
        "total": 15,
    }
    assert Step.from_json(doc) == step
    open_step = Step("Writing", at(2))
    assert Step.from_json(open_step.to_json()) == open_step
    assert steps_from_json([doc, {"name": 7}, "junk", {"name": "x"}, None]) == (step,)
    assert steps_from_json({"not": "a list"}) == ()


# ---------------------------------------------------------------------------------- through the service
async def test_a_runs_steps_are_kept_with_it_and_its_status_shows_the_detail(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    run = await job.next_start()
    start = clock.now()
    clock.advance(timedelta(seconds=2))
    run.report(10, "Fetching GitHub PRs", detail="repo 1/15: octo/api", done=1, total=15)
    clock.advance(timedelta(seconds=30))
    run.report(60, detail="repo 9/15: octo/web", done=9)
    # The report travels the real path: runner -> progress file -> inotify -> monitor -> hub.
    progress = (await published(service, lambda d: d["progress"]["done"] == 9))["progress"]
    assert (progress["step"], progress["detail"], progress["done"], progress["total"]) == (
        "Fetching GitHub PRs",
        "repo 9/15: octo/web",
        9,
        15,
    )
    assert progress["stepStartedAt"] == iso(start + timedelta(seconds=2))
    clock.advance(timedelta(seconds=8))
    run.report(90, "Writing snapshot")
    clock.advance(timedelta(seconds=1))
    run.finish()
    await ended(service, run)
    steps = service.history.steps(run.ctx.run_id)
    assert steps is not None
    assert [(s.name, s.duration_seconds, s.percent_start, s.percent_end, s.detail) for s in steps] == [
        ("Starting...", 2.0, 0, 0, None),
        ("Fetching GitHub PRs", 38.0, 10, 60, "repo 9/15: octo/web"),
        ("Writing snapshot", 1.0, 90, 100, None),
    ]
    assert service.status()["progress"]["detail"] is None, "an ended run shows no detail"


async def test_bad_reports_are_said_once_per_run_and_never_break_it(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob, caplog: pytest.LogCaptureFixture
) -> None:
    from orchestrator.core.steps import Parsed

    run = await job.next_start()
    caplog.set_level(logging.WARNING, logger="orchestrator.runner.steps")
    for n in range(200):
        clock.advance(timedelta(seconds=1))
        run.sink(Parsed(StepReport(n / 2, f"step {n % 3}"), (f"step of {5000 + n} characters cut",)))
    run.finish()
    await ended(service, run)
    said = [r.getMessage() for r in caplog.records if "progress report" in r.getMessage()]
    assert len(said) == 1 and "step of 5000 characters cut" in said[0]
    assert service.runner.state.last_run is not None and service.runner.state.last_run.status is RunStatus.COMPLETED
