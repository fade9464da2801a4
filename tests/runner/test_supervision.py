"""Ending runs that do not end by themselves: timeout, stall and cancel, on a fake clock with a scripted job.

The real process side (SIGTERM to the group, grace, SIGKILL) is in tests/faults/test_supervision.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source
from orchestrator.live.progress import Progress
from orchestrator.service import Orchestrator
from tests.fakes import T0, ScriptedJob, ScriptedRun, Services, ended, minutes, settle
from tests.support import saved_state

pytestmark = pytest.mark.service(interval=600)


@dataclass(frozen=True)
class Case:
    timeout: float
    stall: float
    reports: dict[int, tuple[float, str]]
    """{minute: (percent, step)} reported by the job."""
    stopped_at: int | None
    """The minute the runner ends the run, or ``None`` if it never does."""
    error: str | None


CASES = {
    "timeout": Case(20, 0, {}, 20, "timed out"),
    "progress-does-not-extend-timeout": Case(20, 0, {5: (10, "a"), 10: (50, "b"), 19: (90, "c")}, 20, "timed out"),
    "stall-without-any-progress": Case(0, 5, {}, 5, "stalled"),
    "stall-counts-from-last-change": Case(0, 5, {3: (10, "a"), 6: (20, "b"), 9: (30, "c")}, 14, "stalled"),
    "same-report-again-is-no-progress": Case(0, 5, {3: (10, "a"), 6: (10, "a")}, 8, "stalled"),
    "a-new-step-alone-is-progress": Case(0, 5, {3: (10, "a"), 6: (10, "b")}, 11, "stalled"),
    "both-timeout-first": Case(20, 5, {k: (k, "x") for k in range(2, 30, 2)}, 20, "timed out"),
    "both-stall-first": Case(30, 5, {2: (1, "x"), 4: (2, "x")}, 9, "stalled"),
    "off-by-default": Case(0, 0, {}, None, None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_timeout_and_stall_table(case: Case, clock: FakeClock, job: ScriptedJob, services: Services) -> None:
    timeout, stall, reports, stopped_at, error = case.timeout, case.stall, case.reports, case.stopped_at, case.error
    service = await services.start(timeout_minutes=timeout, stall_timeout_minutes=stall)
    run = await job.next_start()
    for minute in range(1, 61):
        clock.advance(minutes(1))
        if minute in reports:
            run.report(*reports[minute])
        await settle()
        if run.stopped.is_set():
            break
    if stopped_at is None:
        assert service.runner.stopping is None, "nothing ends a run when both limits are off"
        assert not run.stopped.is_set(), "nothing ends a run when both limits are off"
        run.finish()
        await ended(service, run)
        return
    assert minute == stopped_at, f"stopped at minute {minute}, expected {stopped_at}"
    await ended(service, run)
    last = service.status()["lastRun"]
    assert (last["status"], last["error"]) == ("error", error)


async def test_cancel_ends_the_run_as_cancelled_and_keeps_what_is_queued(
    service: Orchestrator, job: ScriptedJob
) -> None:
    run = await job.next_start()
    run.report(40, "Fetching PRs (6/15)")
    await service.request_run(Source.HTTP, "after the release")
    await settle()
    assert service.cancel("wrong branch") == run.ctx.run_id
    assert service.cancel("twice") == run.ctx.run_id, "a second cancel is the same request, not an error"
    await ended(service, run)
    assert run.stopped.is_set()
    last = service.status()["lastRun"]
    assert (last["status"], last["error"], last["step"]) == ("cancelled", "wrong branch", "Fetching PRs (6/15)")

    follow_up = await job.next_start()
    assert follow_up.ctx.source is Source.HTTP, "the trigger queued during the cancelled run still runs"
    assert follow_up.ctx.reason == "after the release"
    assert service.status()["stopping"] is None, "a cancel is for one run, not the next"


async def test_cancel_when_idle_is_none_and_changes_nothing(service: Orchestrator, job: ScriptedJob) -> None:
    run = await job.next_start()
    run.finish()
    await ended(service, run)
    before = service.status()
    assert service.cancel("nothing to cancel") is None
    assert service.status()["lastRun"] == before["lastRun"]


async def test_stopping_shows_while_the_job_gets_its_grace(service: Orchestrator, job: ScriptedJob) -> None:
    run = await job.next_start()
    version, _ = service.hub.latest()
    service.cancel("by hand")
    # Published at once, before the job has stopped: the page can say "Stopping…" during the grace period.
    _, document = await service.hub.next_after(version)
    assert document["stopping"] == "by hand"
    assert document["running"] is True
    await ended(service, run)
    assert service.status()["lastRun"]["status"] == RunStatus.CANCELLED.value


async def test_a_cancel_in_the_first_instant_of_a_run_is_not_lost(services: Services) -> None:
    orchestrator = services.build()

    async def cancel_as_soon_as_it_shows() -> str | None:
        version, document = orchestrator.hub.latest()
        while not document.get("running"):
            version, document = await orchestrator.hub.next_after(version)
        # The run is visible, and its "Starting..." progress is still being written: cancel now.
        return orchestrator.cancel("too early")

    canceller = asyncio.create_task(cancel_as_soon_as_it_shows())
    await services.started(orchestrator)
    run_id = await asyncio.wait_for(canceller, 10)
    assert run_id is not None
    version, document = orchestrator.hub.latest()
    async with asyncio.timeout(10):
        while (document.get("lastRun") or {}).get("runId") != run_id:
            version, document = await orchestrator.hub.next_after(version)
    assert (document["lastRun"]["status"], document["lastRun"]["error"]) == ("cancelled", "too early")


async def test_file_progress_counts_but_echoes_of_our_own_writes_do_not(
    clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    orchestrator = await services.start(stall_timeout_minutes=5)
    run = await job.next_start()
    run_id = run.ctx.run_id
    for minute in range(1, 20):
        clock.advance(minutes(1))
        if minute == 2:
            run.report(10, "from stdout")
        if minute == 3:
            orchestrator.runner.saw_file_progress(file_progress(run_id, 20, "written by the job itself"))
        if minute == 6:
            orchestrator.runner.saw_file_progress(file_progress(run_id, 10, "from stdout"))  # a late echo
            orchestrator.runner.saw_file_progress(file_progress("another-run", 50, "not this run"))
        await settle()
        if run.stopped.is_set():
            break
    assert minute == 8, "stalled 5 minutes after the job's own write at minute 3"


def file_progress(run_id: str, percent: float, step: str) -> Progress:
    return Progress(status=RunStatus.RUNNING, step=step, progress=percent, run_id=run_id)


class GatedWrites:
    """One progress write that waits for the test to open a gate: a disk hiccup, at a moment the test picks.
    Later writes go through at once."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.gate = threading.Event()
        self.waiting = threading.Event()
        self._hold_next = threading.Event()
        progress_file = orchestrator.unit.progress_file
        real_write = progress_file.write

        def write(progress: Progress, *, staged: bool = False) -> None:
            if self._hold_next.is_set():
                self._hold_next.clear()
                self.waiting.set()
                assert self.gate.wait(10), "the test never opened the gate"
            real_write(progress, staged=staged)

        progress_file.write = write  # type: ignore[method-assign]

    def hold(self) -> None:
        self.gate.clear()
        self.waiting.clear()
        self._hold_next.set()

    async def until_a_write_waits(self) -> None:
        assert await asyncio.to_thread(self.waiting.wait, 10), "no progress write came"


async def stop_while_a_write_waits(orchestrator: Orchestrator, writes: GatedWrites) -> None:
    """SIGTERM (``stop``) while a progress write is stuck in its thread; then the disk catches up."""
    await writes.until_a_write_waits()
    stopping = asyncio.create_task(orchestrator.stop())
    await settle()
    writes.gate.set()
    await asyncio.wait_for(stopping, 10)


def on_disk(root: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((root / "data" / name).read_text())
    return document


@pytest.fixture
async def gated(services: Services, job: ScriptedJob) -> tuple[Orchestrator, GatedWrites, ScriptedRun]:
    """A service with its start-up run going and the next progress write held (the test stops the service)."""
    orchestrator = services.build()
    writes = GatedWrites(orchestrator)
    await services.started(orchestrator)
    run = await job.next_start()
    await settle()
    writes.hold()
    return orchestrator, writes, run


async def test_a_stop_just_as_a_run_ends_still_records_its_outcome(
    tmp_path: Path, gated: tuple[Orchestrator, GatedWrites, ScriptedRun]
) -> None:
    orchestrator, writes, run = gated
    run.report(90, "almost")  # its write hangs: the runner's flush after the job's end waits behind it
    run.finish()
    await stop_while_a_write_waits(orchestrator, writes)
    state = saved_state(tmp_path / "data")
    assert state["current"] is None, "the run ended before the stop: it is not 'interrupted'"
    assert (state["lastRun"]["runId"], state["lastRun"]["status"]) == (run.ctx.run_id, "completed")
    assert on_disk(tmp_path, "snapshot_progress.json")["status"] == "completed"


async def test_a_write_in_flight_at_stop_never_lands_after_the_outcome(
    tmp_path: Path, gated: tuple[Orchestrator, GatedWrites, ScriptedRun], services: Services
) -> None:
    orchestrator, writes, run = gated
    run.report(50, "half way")  # the writer task's thread hangs on this "running" document
    await stop_while_a_write_waits(orchestrator, writes)
    progress = on_disk(tmp_path, "snapshot_progress.json")
    assert (progress["status"], progress["runId"]) == ("cancelled", run.ctx.run_id)

    again = await services.start(clock=FakeClock(T0), job=ScriptedJob())
    document = again.status()
    assert (document["running"], document["progress"]["status"]) == (False, "cancelled")


async def test_a_request_that_arrives_while_stopping_is_kept_for_the_next_start(
    job: ScriptedJob, services: Services
) -> None:
    orchestrator = await services.start()
    run = await job.next_start()
    run.finish()
    await ended(orchestrator, run)
    await orchestrator.stop()
    # An HTTP handler that read its body just before the stop calls request_run just after it.
    await orchestrator.request_run(Source.HTTP, "late")
    assert job.started.empty(), "nothing runs once the service is stopping"
    again = services.build()
    assert [t.reason for t in again.runner.state.pending] == ["late"]


async def test_a_wall_clock_step_does_not_end_a_run_early(
    clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    orchestrator = await services.start(timeout_minutes=20)
    run = await job.next_start()
    clock.advance(minutes(5))
    clock.step_wall_clock(timedelta(hours=3))  # NTP corrects a clock that was three hours behind
    await settle()
    assert orchestrator.runner.stopping is None, "five minutes of a twenty-minute limit have passed, not three hours"
    assert not run.stopped.is_set(), "five minutes of a twenty-minute limit have passed, not three hours"
    clock.advance(minutes(14))
    await settle()
    assert orchestrator.runner.stopping is None
    assert not run.stopped.is_set()
    clock.advance(minutes(1))
    await ended(orchestrator, run)
    assert orchestrator.status()["lastRun"]["error"] == "timed out"
