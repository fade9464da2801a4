"""The status document as a pure function of the record, the progress, the schedule and ``now``: a table of
states and the fields each must show; and which progress is shown, and which changes are news."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import Pause, RunRecord, State
from orchestrator.live.progress import Progress
from orchestrator.live.status import StatusInputs, shown_progress, status_document, with_clock, without_clock
from tests.fakes import T0, minutes

LAST = RunRecord(
    "20260120T093000Z-aaaaaa",
    (Trigger(Source.TIMER, T0 - minutes(30)),),
    T0 - minutes(30),
    status=RunStatus.COMPLETED,
    finished_at=T0 - minutes(25),
    trigger_count=1,
)
CURRENT = RunRecord("20260120T100000Z-bbbbbb", (Trigger(Source.HTTP, T0, "deploy"),), T0, trigger_count=1)
NO_DETAIL = {"detail": None, "done": None, "total": None, "stepStartedAt": None}
RUNNING = Progress(RunStatus.RUNNING, "Copying", 45, started_at=T0, run_id=CURRENT.run_id)
FIRST_FIELDS = ["running", "lastRunAt", "nextRunAt", "intervalMinutes", "minutesUntilNextRun", "progress"]


@dataclass(frozen=True)
class Case:
    name: str
    state: State
    expected: dict[str, Any]
    progress: Progress = field(default_factory=Progress)
    due: datetime = T0 + minutes(30)
    now: datetime = T0
    interval: float = 30
    cooldown: float = 5
    stopping: str | None = None


CASES = [
    Case(
        "fresh: nothing ran",
        State(),
        {
            "running": False,
            "lastRunAt": None,
            "nextRunAt": "2026-01-20T10:30:00.000Z",
            "intervalMinutes": 30,
            "minutesUntilNextRun": 30,
            "progress": {"status": "idle", "step": "", "progress": 0, **NO_DETAIL},
            "secondsUntilNextRun": 1800.0,
            "cooldownMinutes": 5,
            "cooldownUntil": None,
            "queued": False,
            "pendingTriggers": 0,
            "currentRun": None,
            "stopping": None,
            "lastRun": None,
            "paused": None,
            "serverTime": "2026-01-20T10:00:00.000Z",
        },
    ),
    Case(
        "running, with triggers waiting and a stop under way",
        State(last_run=LAST, current=CURRENT, pending=(Trigger(Source.FILE, T0),), pending_count=3),
        {
            "running": True,
            "lastRunAt": "2026-01-20T10:00:00.000Z",  # the running run's start
            "progress": {"status": "running", "step": "Copying", "progress": 45, **NO_DETAIL},
            "queued": True,
            "pendingTriggers": 3,
            "currentRun": CURRENT.to_brief_json(),
            "lastRun": LAST.to_brief_json(),
            "stopping": "timed out",
        },
        progress=RUNNING,
        stopping="timed out",
    ),
    Case(
        "in a cooldown: its end is shown",
        State(last_run=LAST, not_before=T0 + minutes(2)),
        {"cooldownUntil": "2026-01-20T10:02:00.000Z", "nextRunAt": "2026-01-20T10:30:00.000Z"},
    ),
    Case("a cooldown that is over is not shown", State(not_before=T0 - minutes(1)), {"cooldownUntil": None}),
    Case(
        "paused",
        State(paused=Pause(T0 - minutes(5), "maintenance")),
        {"paused": {"since": "2026-01-20T09:55:00.000Z", "reason": "maintenance"}},
    ),
    Case(
        "overdue: the countdown stops at zero",
        State(),
        {"minutesUntilNextRun": 0, "secondsUntilNextRun": 0.0},
        due=T0 - minutes(3),
    ),
    Case(
        "fractional minutes stay fractions, whole ones are integers",
        State(),
        {"intervalMinutes": 0.5, "cooldownMinutes": 0, "secondsUntilNextRun": 29.5},
        due=T0 + minutes(0.5),
        now=T0 + minutes(0.5) - minutes(29.5 / 60),
        interval=0.5,
        cooldown=0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_status_document(case: Case) -> None:
    inputs = StatusInputs(
        state=case.state,
        progress=case.progress,
        due=case.due,
        interval_minutes=case.interval,
        cooldown_minutes=case.cooldown,
        stopping=case.stopping,
        eta={"finishAt": "x"},
        checks=({"kind": "late"},),
    )
    document = status_document(inputs, case.now)
    assert list(document)[:6] == FIRST_FIELDS
    assert document["eta"] == {"finishAt": "x"} and document["checks"] == [{"kind": "late"}]
    assert {key: document[key] for key in case.expected} == case.expected


def test_the_files_progress_is_shown_while_it_describes_our_run() -> None:
    ours = RUNNING
    from_file = replace(RUNNING, progress=60, step="written by the job")
    assert shown_progress(Progress(), from_file, ours_on_disk=False) is from_file, "nothing ran here: the file"
    assert shown_progress(Progress(), None, ours_on_disk=False) == Progress()
    assert shown_progress(ours, from_file, ours_on_disk=True) is from_file
    assert shown_progress(ours, from_file, ours_on_disk=False) is ours, "our last write did not land"
    other_run = Progress(RunStatus.RUNNING, "old", 10, run_id="someone else's")
    assert shown_progress(ours, other_run, ours_on_disk=True) is ours
    ended = Progress(RunStatus.COMPLETED, "Completed", 100, run_id=ours.run_id)
    assert shown_progress(ours, ended, ours_on_disk=True) is ours, "a status the runner has not reached"


def test_a_change_of_the_clock_alone_is_no_news_and_is_brought_up_to_date() -> None:
    inputs = StatusInputs(State(), Progress(), T0 + minutes(30), 30, 5)
    before, later = status_document(inputs, T0), status_document(inputs, T0 + minutes(10))
    assert before != later and without_clock(before) == without_clock(later)
    assert with_clock(before, T0 + minutes(10)) == later
    assert with_clock({"nextRunAt": None}, T0) == {"nextRunAt": None}
