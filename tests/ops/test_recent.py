"""The recent runs held for the estimates and the checks: read from a real run history (SQLite) once, then kept
as runs finish, answering as the history would."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.eta import ETA_SAMPLE_RUNS
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.core.runevents import RunFinished
from orchestrator.core.steps import Step
from orchestrator.ops.recent import WINDOW, RecentRuns
from orchestrator.ops.retention import Retention
from orchestrator.store.api import Page, StoreUnavailable
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.null import NullHistory
from orchestrator.store.runlogs import RunLogs
from tests.fakes import T0, WAIT


def run(n: int, status: RunStatus = RunStatus.COMPLETED, took: float = 60) -> RunRecord:
    started = T0 + timedelta(hours=n)
    return RunRecord(
        f"run-{n:03}",
        (Trigger(Source.TIMER, started),),
        started,
        status=status,
        finished_at=started + timedelta(seconds=took),
    )


def steps_of(n: int, *names: str) -> tuple[Step, ...]:
    """Run ``n``'s steps, a minute each, with a detail each (which the recent runs need not keep)."""
    started = T0 + timedelta(hours=n)
    return tuple(
        Step(name, started + timedelta(minutes=i), started + timedelta(minutes=i + 1), detail=f"{name} {n}")
        for i, name in enumerate(names)
    )


def names(recent: RecentRuns) -> list[list[str]]:
    return [[step.name for step in steps] for steps in recent.completed_steps()]


async def loaded(recent: RecentRuns) -> asyncio.Task[None]:
    told = asyncio.Event()
    recent.watch(told.set)
    task = asyncio.create_task(recent.serve())
    async with asyncio.timeout(WAIT):
        await told.wait()
    return task


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled(), "the task ends only when cancelled"


async def test_the_history_is_read_once_then_finished_runs_are_kept(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    for n in range(3):
        history.record(run(n, RunStatus.ERROR if n == 1 else RunStatus.COMPLETED, took=n + 1))
    recent = RecentRuns(history)
    task = await loaded(recent)
    try:
        assert [r.run_id for r in recent.completed(10, within=10)] == ["run-002", "run-000"]
        assert [r.run_id for r in recent.completed(10, within=2)] == ["run-002"], "among the newest two only"
        recent.run_finished(RunFinished(run(3, took=4)))
        assert [r.duration_seconds for r in recent.completed(2, within=10)] == [4.0, 3.0]
        assert recent.documents(1, within=10) == [run(3, took=4).to_json()]
    finally:
        await stopped(task)


async def test_a_run_the_history_has_already_is_not_held_twice(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    recovered = run(0, RunStatus.ERROR)
    history.record(recovered)  # the run the last service died in, recorded before the listeners hear of it
    recent = RecentRuns(history)
    task = await loaded(recent)
    try:
        recent.run_finished(RunFinished(recovered))
        recent.run_finished(RunFinished(run(1)))
        assert [r.run_id for r in recent.completed(10, within=2)] == ["run-001"]
        assert [r.run_id for r in recent.completed(10, within=1)] == ["run-001"]
    finally:
        await stopped(task)


async def test_the_newest_runs_only_are_held(tmp_path: Path) -> None:
    recent = RecentRuns(SqliteHistory(tmp_path / HISTORY_FILE_NAME))
    task = await loaded(recent)
    try:
        for n in range(WINDOW + 5):
            recent.run_finished(RunFinished(run(n)))
        held = recent.completed(WINDOW * 2, within=WINDOW * 2)
        assert len(held) == WINDOW and held[0].run_id == f"run-{WINDOW + 4:03}"
    finally:
        await stopped(task)


async def test_a_history_never_opened_knows_of_no_recent_run() -> None:
    recent = RecentRuns(NullHistory("runs.sqlite3"))
    task = asyncio.create_task(recent.serve())
    try:
        recent.run_finished(RunFinished(run(0)))
        async with asyncio.timeout(WAIT):
            await recent.ready()
        assert recent.completed(10, within=10) == (), "heard before the history was found never opened: dropped"
        recent.run_finished(RunFinished(run(1)))
        assert recent.completed(10, within=10) == ()
    finally:
        await stopped(task)


class FlakyHistory(SqliteHistory):
    """A history whose pages cannot be read until ``ok`` is set; ``tries`` counts the reads."""

    ok = False
    tries = threading.Semaphore(0)

    def page(self, *, limit: int = 50, cursor: str | None = None, job: str | None = None) -> Page:
        self.tries.release()
        if not self.ok:
            raise StoreUnavailable("disk I/O error")
        return super().page(limit=limit, cursor=cursor)


async def test_a_history_that_cannot_be_read_is_said_once_and_tried_again_after_each_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = FlakyHistory(tmp_path / HISTORY_FILE_NAME)
    history.record(run(0))
    recent = RecentRuns(history)
    told = asyncio.Event()
    recent.watch(told.set)
    task = asyncio.create_task(recent.serve())
    try:
        assert await asyncio.to_thread(history.tries.acquire, timeout=WAIT)
        for n in (1, 2):
            recent.run_finished(RunFinished(run(n)))  # kept meanwhile, and a reason to read again
            assert await asyncio.to_thread(history.tries.acquire, timeout=WAIT)
        assert [r.run_id for r in recent.completed(10, within=10)] == ["run-002", "run-001"]
        assert sum("cannot read recent run" in r.message for r in caplog.records) == 1
        history.ok = True
        history.record(run(1))
        history.record(run(2))
        recent.run_finished(RunFinished(run(3)))
        async with asyncio.timeout(WAIT):
            await told.wait()
        assert [r.run_id for r in recent.completed(10, within=10)] == ["run-003", "run-002", "run-001", "run-000"]
    finally:
        await stopped(task)


async def test_runs_retention_removes_are_forgotten(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    recent = RecentRuns(history)
    retention = Retention(history, RunLogs(tmp_path, FakeClock(T0)), FakeClock(T0), keep_runs=2, keep_days=0)
    retention.on_pruned(recent.forget)
    task = await loaded(recent)
    try:
        for n in range(3):
            history.record(run(n))
            retention.run_finished(RunFinished(run(n)))
            recent.run_finished(RunFinished(run(n)))
            await retention.wait()
        assert [r.run_id for r in recent.completed(10, within=10)] == ["run-002", "run-001"], "as the history has them"
        assert [r.run_id for r in history.page().runs] == ["run-002", "run-001"]
    finally:
        await stopped(task)
        await retention.stop()


async def test_the_steps_of_the_newest_completed_runs_are_read_once_then_kept(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    history.record(run(0), steps=steps_of(0, "a", "b"))
    history.record(run(1, RunStatus.ERROR), steps=steps_of(1, "a"))  # failed: its steps are no plan
    history.record(run(2))  # completed without a step (a job that reports none): it has none
    recent = RecentRuns(history)
    task = await loaded(recent)
    try:
        assert names(recent) == [[], ["a", "b"]]
        held = recent.completed_steps()
        assert recent.completed_steps() is held, "the same until a run ends"
        recent.run_finished(RunFinished(run(3, RunStatus.CANCELLED), steps_of(3, "x")))
        assert recent.completed_steps() is held
        recent.run_finished(RunFinished(run(4), steps_of(4, "a", "c")))
        assert names(recent) == [["a", "c"], [], ["a", "b"]]
        assert [step.detail for step in recent.completed_steps()[0]] == [None, None], "details are not kept"
        assert [step.duration_seconds for step in recent.completed_steps()[0]] == [60, 60]
        for n in range(5, 5 + ETA_SAMPLE_RUNS):
            recent.run_finished(RunFinished(run(n), steps_of(n, f"s{n}")))
        assert names(recent) == [[f"s{n}"] for n in reversed(range(5, 5 + ETA_SAMPLE_RUNS))], "the newest only"
        recent.forget(["run-014", "run-013"])
        assert names(recent)[0] == ["s12"]
    finally:
        await stopped(task)


async def test_steps_heard_before_the_history_is_read_go_on_top_of_it(tmp_path: Path) -> None:
    history = FlakyHistory(tmp_path / HISTORY_FILE_NAME)
    history.tries = threading.Semaphore(0)  # its own: no read of an earlier test's history counts here
    history.record(run(0), steps=steps_of(0, "old"))
    recent = RecentRuns(history)
    told = asyncio.Event()
    recent.watch(told.set)
    task = asyncio.create_task(recent.serve())
    try:
        assert await asyncio.to_thread(history.tries.acquire, timeout=WAIT)
        recent.run_finished(RunFinished(run(1), steps_of(1, "new")))
        assert names(recent) == [["new"]], "in use at once"
        assert await asyncio.to_thread(history.tries.acquire, timeout=WAIT)
        history.ok = True
        history.record(run(1), steps=steps_of(1, "new"))  # recorded before the listeners heard of it
        recent.run_finished(RunFinished(run(2), steps_of(2, "newer")))
        async with asyncio.timeout(WAIT):
            await told.wait()
        assert names(recent) == [["newer"], ["new"], ["old"]]
    finally:
        await stopped(task)


async def test_a_history_never_opened_holds_no_steps() -> None:
    recent = RecentRuns(NullHistory("runs.sqlite3"))
    task = asyncio.create_task(recent.serve())
    try:
        async with asyncio.timeout(WAIT):
            await recent.ready()
        recent.run_finished(RunFinished(run(0), steps_of(0, "a")))
        assert recent.completed_steps() == ()
    finally:
        await stopped(task)
