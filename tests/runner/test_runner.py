"""Scheduling, cooldown, coalescing and persistence, driven by a fake clock and a scripted job.

Nothing here sleeps: time moves only when the test advances the fake clock, and a run ends only when the
test finishes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, iso
from orchestrator.core.records import RunRecord, State
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.schedule import Schedule
from orchestrator.job.protocol import JobResult, Report, RunContext, Started
from orchestrator.live.progress import ProgressFile
from orchestrator.runner import Runner
from orchestrator.service import Orchestrator
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.statefile import StateFile
from tests.fakes import T0, ScriptedJob, Services, assert_idle, ended, minutes, settle
from tests.faults.harness import FileChanges
from tests.support import saved_state


async def test_first_start_runs_at_once_then_every_interval(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    first = await job.next_start()
    assert first.ctx.source is Source.STARTUP
    current = service.runner.state.current
    assert current is not None and current.pid == first.pid, "the pid the job reported is saved, as a real job's"
    assert service.status()["lastRunAt"] == iso(T0)
    clock.advance(minutes(2))
    first.finish()
    await ended(service, first)
    assert service.status()["nextRunAt"] == iso(T0 + minutes(30))
    assert service.status()["minutesUntilNextRun"] == 28

    clock.advance(minutes(27))
    await settle()
    assert service.unit.next_run_at() == T0 + minutes(30), "nothing is due a minute early"
    assert_idle(service)
    assert job.started.empty()

    clock.advance(minutes(1))
    second = await job.next_start()
    assert second.ctx.source is Source.TIMER
    assert second.ctx.run_id != first.ctx.run_id


async def test_manual_trigger_runs_at_once_and_cooldown_delays_the_timer(
    clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    service = await services.start(interval=5)
    startup = await job.next_start()
    startup.finish()
    await ended(service, startup)
    clock.advance(minutes(1))
    await service.request_run(Source.HTTP, "button")
    manual = await job.next_start()
    assert manual.ctx.source is Source.HTTP
    assert manual.ctx.reason == "button"
    clock.advance(minutes(2))
    manual.finish()  # ended at T0+3: automatic runs wait until T0+8, not T0+1+5=T0+6
    await ended(service, manual)
    assert service.status()["nextRunAt"] == iso(T0 + minutes(8))
    assert service.status()["cooldownUntil"] == iso(T0 + minutes(8))
    clock.advance(minutes(4))  # T0+7
    await settle()
    assert service.unit.next_run_at() == T0 + minutes(8)
    assert_idle(service)
    assert job.started.empty()
    clock.advance(minutes(1))  # T0+8
    assert (await job.next_start()).ctx.source is Source.TIMER


async def test_twenty_triggers_during_a_run_make_exactly_one_follow_up(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    first = await job.next_start()
    for n in range(10):
        await service.request_run(Source.HTTP, f"http {n}")
        await service.unit.queue.put(service_trigger(Source.FILE, f"file {n}", clock))
    await settle()
    status = service.status()
    assert status["running"] and status["queued"] and status["pendingTriggers"] == 20
    first.finish()
    follow_up = await job.next_start()
    assert len(service.runner.state.current.triggers) == 20  # type: ignore[union-attr]
    assert follow_up.ctx.source is Source.HTTP
    follow_up.finish()
    await ended(service, follow_up)
    assert job.started.empty()
    assert len(job.runs) == 2
    assert not service.status()["queued"]


async def test_a_run_that_outlives_its_interval_is_followed_at_once(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    first = await job.next_start()
    clock.advance(minutes(45))  # the job outlives its interval
    await settle()
    assert service.status()["minutesUntilNextRun"] == 0
    first.finish()
    follow_up = await job.next_start()
    assert follow_up.ctx.source is Source.TIMER
    follow_up.finish()
    await ended(service, follow_up)
    assert job.started.empty(), "the timer fired once for that slot, not once per look"
    assert service.status()["nextRunAt"] == iso(T0 + minutes(75))


async def test_cooldown_holds_after_a_manual_run_longer_than_the_interval(
    clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    service = await services.start(interval=10)
    startup = await job.next_start()
    startup.finish()
    await ended(service, startup)
    clock.advance(minutes(2))
    await service.request_run(Source.HTTP, "long one")
    manual = await job.next_start()
    clock.advance(minutes(11))  # T0+13: the interval (T0+12) passed during the manual run
    await settle()
    manual.finish()
    await ended(service, manual)
    assert service.status()["nextRunAt"] == iso(T0 + minutes(18))
    await settle()
    assert_idle(service)  # no automatic run right after a manual one: the cooldown holds
    assert job.started.empty(), "no automatic run right after a manual one: the cooldown holds"
    clock.advance(minutes(5))
    assert (await job.next_start()).ctx.source is Source.TIMER


async def test_a_trigger_during_shutdown_starts_nothing_and_is_kept(
    tmp_path: Path, job: ScriptedJob, services: Services
) -> None:
    service = await services.start()
    first = await job.next_start()
    first.finish()
    await ended(service, first)
    stopping = asyncio.create_task(service.stop())
    await asyncio.sleep(0)  # the stop has begun: no run starts from now on
    await service.request_run(Source.HTTP, "just before stop")  # answered only once saved
    await stopping
    assert len(job.runs) == 1, "no run starts once the service is stopping"
    state = saved_state(tmp_path / "data")
    assert [t["reason"] for t in state["pending"]] == ["just before stop"]


async def test_a_failure_in_supervision_is_an_error_run_not_a_dead_runner(services: Services) -> None:
    class Exploding(ScriptedJob):
        async def run(self, ctx: RunContext, report: Report, started: Started = lambda pid: None) -> JobResult:
            if not self.runs:
                self.runs.append(None)  # type: ignore[arg-type]
                raise ValueError("embedded null byte")
            return await super().run(ctx, report, started)

    job = Exploding()
    service = await services.start(job=job)
    version, doc = service.hub.latest()
    async with asyncio.timeout(5):  # the start-up run blows up in supervision...
        while doc["lastRun"] is None:
            version, doc = await service.hub.next_after(version)
    assert doc["lastRun"]["status"] == "error"
    assert "embedded null byte" in doc["lastRun"]["error"]
    await service.request_run(Source.HTTP, "next")
    run = await job.next_start()  # ...and the runner still takes the next trigger
    assert run.ctx.reason == "next"
    assert not service.failed


@pytest.mark.parametrize("reason", ["a\x00b", "bad \ud800 surrogate", "tab\there\nnewline"])
async def test_unclean_reasons_are_cleaned_at_the_door(service: Orchestrator, job: ScriptedJob, reason: str) -> None:
    startup = await job.next_start()
    startup.finish()
    await ended(service, startup)
    await service.request_run(Source.HTTP, reason)
    run = await job.next_start()
    assert run.ctx.reason.isprintable()
    assert "\x00" not in run.ctx.reason
    run.ctx.reason.encode("utf-8")  # no lone surrogate left
    run.finish()
    await ended(service, run)
    assert service.runner.state.last_run is not None and service.runner.state.last_run.status is RunStatus.COMPLETED


async def test_failed_run_is_recorded_and_schedule_goes_on(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    run = await job.next_start()
    run.report(40, "half way")
    clock.advance(minutes(1))
    run.finish(RunStatus.ERROR, exit_code=3, error="exited with code 3\nboom")
    await ended(service, run)
    status = service.status()
    assert status["lastRun"]["status"] == "error"
    assert status["lastRun"]["exitCode"] == 3
    assert status["lastRun"]["step"] == "half way"
    assert status["nextRunAt"] == iso(T0 + minutes(30))
    assert service.runner.progress.status is RunStatus.ERROR
    assert service.runner.progress.error == "exited with code 3\nboom"


async def test_pending_triggers_survive_a_restart_and_nothing_runs_twice(
    tmp_path: Path, clock: FakeClock, services: Services
) -> None:
    job = ScriptedJob()
    service = await services.start(job=job)
    await job.next_start()  # the start-up run, left running
    await service.request_run(Source.HTTP, "while running")
    await settle()
    await service.stop()  # stops the running job: it is recorded as cancelled
    state = saved_state(tmp_path / "data")
    assert state["lastRun"]["status"] == "cancelled"
    assert [t["reason"] for t in state["pending"]] == ["while running"]

    clock.advance(minutes(1))
    job2 = ScriptedJob()
    restarted = await services.start(job=job2)
    run = await job2.next_start()
    assert run.ctx.source is Source.HTTP and run.ctx.reason == "while running"
    run.finish()
    await ended(restarted, run)
    assert len(job2.runs) == 1, "the last run is recent: no start-up run on top of the pending one"
    assert restarted.status()["lastRun"]["trigger"] == "http"


async def test_run_missed_while_down_starts_once_at_start_up(clock: FakeClock, services: Services) -> None:
    seed = ScriptedJob()
    service = await services.start(job=seed)
    seeded = await seed.next_start()
    seeded.finish()
    await ended(service, seeded)
    await service.stop()

    clock.advance(minutes(200))  # six intervals pass while the service is down
    job = ScriptedJob()
    restarted = await services.start(job=job)
    run = await job.next_start()
    assert run.ctx.source is Source.STARTUP
    run.finish()
    await ended(restarted, run)
    assert len(job.runs) == 1
    assert restarted.status()["nextRunAt"] == iso(T0 + minutes(230))


async def test_a_crash_mid_run_is_recorded_as_interrupted(tmp_path: Path, clock: FakeClock, services: Services) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "orchestrator_state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "lastRun": None,
                "current": {"runId": "r1", "status": "running", "startedAt": iso(T0), "triggers": []},
                "pending": [],
            }
        )
    )
    (data / "snapshot_progress.json").write_text(json.dumps({"status": "running", "step": "x", "progress": 40}))
    clock.advance(minutes(5))
    job = ScriptedJob()
    service = await services.start(job=job)
    status = service.status()
    assert status["lastRun"]["status"] == "error"
    assert status["lastRun"]["error"] == "interrupted: service stopped"
    assert status["lastRunAt"] == iso(T0)
    assert status["nextRunAt"] == iso(T0 + minutes(30))
    assert status["progress"]["status"] == "error"
    assert json.loads((data / "snapshot_progress.json").read_text())["status"] == "error"
    await settle()
    assert service.unit.next_run_at() == T0 + minutes(30), "the schedule carries on from the interrupted run's start"
    assert_idle(service)
    assert job.started.empty(), "the schedule carries on from the interrupted run's start"


async def test_unreadable_state_file_is_set_aside(tmp_path: Path, services: Services) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "orchestrator_state.json").write_text("{torn")
    job = ScriptedJob()
    await services.start(job=job)
    assert (await job.next_start()).ctx.source is Source.STARTUP
    assert (data / "orchestrator_state.json.corrupt").read_text() == "{torn"


def service_trigger(source: Source, reason: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    from orchestrator.core.events import Trigger

    return Trigger(source, clock.now(), reason)


class Recorder:
    """A run listener that writes down what it is told (and can be told to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.fail = fail

    def run_started(self, event: RunStarted) -> None:
        self.events.append(("started", event.run.run_id, event.run.status.value))
        if self.fail:
            raise RuntimeError("listener bug")

    def run_finished(self, event: RunFinished) -> None:
        self.events.append(("finished", event.run.run_id, event.run.status.value))
        if self.fail:
            raise RuntimeError("listener bug")


async def test_listeners_hear_each_start_and_end_and_a_failing_one_stops_nothing(
    service: Orchestrator, job: ScriptedJob, caplog: pytest.LogCaptureFixture
) -> None:
    broken, heard = Recorder(fail=True), Recorder()
    first = await job.next_start()
    service.listeners.extend([broken, heard])  # after the first run started: only its end is heard
    first.finish(RunStatus.ERROR, exit_code=3, error="boom")
    await ended(service, first)
    await service.request_run(Source.HTTP, "again")
    second = await job.next_start()
    second.finish()
    await ended(service, second)
    run_a, run_b = first.ctx.run_id, second.ctx.run_id
    assert heard.events == [
        ("finished", run_a, "error"),
        ("started", run_b, "running"),
        ("finished", run_b, "completed"),
    ]
    assert broken.events == heard.events
    assert sum("Recorder.run_finished failed" in r.message for r in caplog.records) == 2


async def test_a_run_the_last_service_died_in_is_told_as_finished_at_the_next_start(
    tmp_path: Path, job: ScriptedJob, services: Services
) -> None:
    first = await services.start()
    run = await job.next_start()
    progress_file = first.unit.progress_file.path
    landed = FileChanges(progress_file)
    try:
        run.report(40, "Fetching PRs (6/15)")
        await landed.until(lambda: "Fetching PRs (6/15)" in progress_file.read_text(), "the step on disk")
    finally:
        landed.close()
    # The service "dies": its files still say the run is current. A new service recovers it.
    state_files = [tmp_path / "data" / name for name in ("orchestrator_state.json", "orchestrator_state.journal")]
    states, progress = [path.read_bytes() if path.exists() else None for path in state_files], progress_file.read_text()
    await first.stop()
    for path, content in zip(state_files, states, strict=True):
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)
    progress_file.write_text(progress)
    second = services.build(job=ScriptedJob())
    heard = Recorder()
    second.listeners.append(heard)
    await services.started(second)
    await settle()
    assert heard.events[0] == ("finished", run.ctx.run_id, "error")
    recovered = second.status()["lastRun"]
    assert (recovered["error"], recovered["step"]) == ("interrupted: service stopped", "Fetching PRs (6/15)")


# ------------------------------------------------------------------------------------ after a crash: retries
def crashed_state(data: Path, current: dict[str, object], pending: list[dict[str, object]] | None = None) -> None:
    """A state file as the service leaves it when it is killed mid-run (the fields of the previous version
    only, unless ``current`` brings more: an older data folder must be read as well)."""
    data.mkdir(parents=True, exist_ok=True)
    document = {"version": 1, "lastRun": None, "current": current, "notBefore": None, "pending": pending or []}
    (data / "orchestrator_state.json").write_text(json.dumps(document))


def trigger_doc(source: str, reason: str, **more: object) -> dict[str, object]:
    return {"source": source, "at": iso(T0), "reason": reason, **more}


async def test_building_a_runner_reads_and_writes_nothing_until_it_recovers(tmp_path: Path, clock: FakeClock) -> None:
    current = {"runId": "r1", "status": "running", "startedAt": iso(T0), "pid": None}
    current["triggers"] = [trigger_doc("http", "deploy 42")]
    data = tmp_path / "data"
    crashed_state(data, current)
    before = {path.name: path.read_bytes() for path in data.iterdir()}
    runner = Runner(
        queue=asyncio.Queue(),
        job=ScriptedJob(),
        clock=clock,
        schedule=Schedule(timedelta(minutes=30), timedelta(minutes=5)),
        store=StateFile(data / "orchestrator_state.json").job("snapshot"),
        progress_file=ProgressFile(data / "snapshot_progress.json"),
    )
    assert runner.state == State() and not runner.running
    assert {path.name: path.read_bytes() for path in data.iterdir()} == before
    runner.recover()
    assert runner.state.last_run is not None and runner.state.last_run.run_id == "r1"
    assert runner.state.retry_of == "r1" and runner.state.pending_count == 1
    assert saved_state(data)["lastRun"]["runId"] == "r1"


async def test_a_run_the_service_was_killed_in_runs_again_once_with_its_triggers(
    tmp_path: Path, clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    # Written by the previous version: the run's pid not saved yet, no retry fields at all.
    current = {"runId": "r1", "status": "running", "startedAt": iso(T0), "pid": None}
    current["triggers"] = [trigger_doc("http", "deploy 42")]
    crashed_state(tmp_path / "data", current, pending=[trigger_doc("file", "came during r1")])
    clock.advance(minutes(1))
    service = await services.start()
    run = await job.next_start()
    assert run.ctx.reason == "retry of r1; deploy 42; came during r1"
    assert run.ctx.source is Source.HTTP, "the job is told what first asked for the run"
    doc = service.status()
    assert (doc["lastRun"]["runId"], doc["lastRun"]["error"]) == ("r1", "interrupted: service stopped")
    assert doc["currentRun"]["retryOf"] == "r1"
    assert [t.get("retried", False) for t in doc["currentRun"]["triggers"]] == [True, False]
    run.finish()
    await ended(service, run)
    await settle()
    assert_idle(service)  # run again once, not more: nothing is pending for a second retry
    assert len(job.runs) == 1, "run again once, not more"


async def test_a_retry_killed_too_drops_the_triggers_retried_once_and_retries_the_new(
    tmp_path: Path, job: ScriptedJob, caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    current = {"runId": "r2", "status": "running", "startedAt": iso(T0), "retryOf": "r1"}
    current["triggers"] = [trigger_doc("http", "deploy 42", retried=True), trigger_doc("file", "joined r2")]
    crashed_state(tmp_path / "data", current)
    service = await services.start()
    run = await job.next_start()
    assert run.ctx.reason == "retry of r2; joined r2", "a trigger gets one retry, and only one"
    assert "1 trigger(s) already retried once are dropped" in caplog.text
    run.finish()
    await ended(service, run)


async def test_a_retry_with_nothing_new_is_not_run_again(tmp_path: Path, services: Services) -> None:
    current = {"runId": "r2", "status": "running", "startedAt": iso(T0), "retryOf": "r1"}
    current["triggers"] = [trigger_doc("http", "deploy 42", retried=True)]
    crashed_state(tmp_path / "data", current)
    service = await services.start()
    doc = service.status()
    assert (doc["lastRun"]["runId"], doc["lastRun"]["status"]) == ("r2", "error")
    assert not doc["running"] and not doc["queued"], "a run that keeps killing the service is not run for ever"


async def test_a_run_killed_while_it_was_being_stopped_is_not_run_again(tmp_path: Path, services: Services) -> None:
    current = {"runId": "r1", "status": "running", "startedAt": iso(T0), "triggers": [trigger_doc("http", "x")]}
    current["stopRequested"] = {"status": "cancelled", "reason": "cancelled by request"}
    crashed_state(tmp_path / "data", current)
    service = await services.start()
    doc = service.status()
    assert (doc["lastRun"]["status"], doc["lastRun"]["stopRequested"]) == ("cancelled", None)
    assert "cancelled by request" in doc["lastRun"]["error"]
    assert not doc["running"] and not doc["queued"], "stopped on purpose: nobody is owed a run"


async def test_the_history_cannot_stay_running_after_a_crash(
    tmp_path: Path, clock: FakeClock, services: Services
) -> None:
    """Killed after the state was saved but before the history row was finished: the state knows the end."""
    data = tmp_path / "data"
    data.mkdir()
    history = SqliteHistory(data / HISTORY_FILE_NAME)
    ended_run = RunRecord("r1", (), T0, status=RunStatus.COMPLETED, finished_at=T0 + minutes(2), exit_code=0)
    history.record(replace(ended_run, status=RunStatus.RUNNING, finished_at=None, exit_code=None))
    history.record(RunRecord("r0", (), T0 - minutes(60)))  # never finished, and the state knows nothing of it
    document = {"version": 1, "lastRun": ended_run.to_json(), "current": None, "pending": []}
    (data / "orchestrator_state.json").write_text(json.dumps(document))
    clock.advance(minutes(3))
    await services.start()
    r1, r0 = (stored.document if (stored := history.get(i)) else None for i in ("r1", "r0"))
    assert r1 is not None and (r1["status"], r1["finishedAt"]) == ("completed", iso(T0 + minutes(2)))
    assert r0 is not None and (r0["status"], r0["error"]) == ("error", "interrupted: service stopped")
    assert not history.unfinished()


@pytest.mark.process
async def test_a_leftover_stays_on_record_until_it_is_stopped(
    tmp_path: Path, job: ScriptedJob, services: Services
) -> None:
    """The service died again while stopping an earlier run's leftover job: the next start must still look."""
    leftover = subprocess.Popen(  # noqa: ASYNC220 (a stand-in for a job an earlier service left)
        ["sleep", "60"], env={**os.environ, "SNAPSHOT_RUN_ID": "r0"}, start_new_session=True
    )
    try:
        data = tmp_path / "data"
        data.mkdir()
        document = {"version": 1, "lastRun": None, "current": None, "pending": [], "leftovers": [{"runId": "r0"}]}
        (data / "orchestrator_state.json").write_text(json.dumps(document))
        service = await services.start()
        assert leftover.wait(timeout=10) == -signal.SIGTERM, "stopped before the service started anything"
        saved = saved_state(data)
        assert saved["leftovers"] == [], "off the record only once stopped"
        await service.stop()
    finally:
        leftover.kill()
        leftover.wait()


async def test_triggers_beyond_the_recorded_ones_are_retried_once_too(
    tmp_path: Path, job: ScriptedJob, services: Services
) -> None:
    """A retry of 100 recorded triggers (all retried) that 5 more joined, counted only: killed again, the 5
    are still owed their retry (not dropped with the 100)."""
    current = {"runId": "r2", "status": "running", "startedAt": iso(T0), "retryOf": "r1", "triggerCount": 105}
    current["triggers"] = [trigger_doc("file", f"f{n}", retried=True) for n in range(100)]
    crashed_state(tmp_path / "data", current)
    service = await services.start()
    run = await job.next_start()
    assert (run.ctx.reason, service.status()["currentRun"]["triggerCount"]) == ("retry of r2", 5)
    saved = saved_state(tmp_path / "data")
    assert saved["current"]["retriedBeyond"] == 5, "a third crash drops them"


async def test_a_cancel_is_on_disk_before_it_is_answered(service: Orchestrator, job: ScriptedJob) -> None:
    run = await job.next_start()
    assert service.cancel("by hand") == run.ctx.run_id
    saved = saved_state(service.settings.store.data_dir)
    assert saved["current"]["stopRequested"] == {"status": "cancelled", "reason": "by hand"}


async def test_a_restart_with_another_cooldown_applies_it_to_the_last_manual_run(
    job: ScriptedJob, services: Services
) -> None:
    """The state file holds the end of the cooldown as it was counted then (5 minutes); the service comes back
    with --cooldown 1 and says the next automatic run is due one minute after that manual run, not five."""
    first = await services.start(interval=2)
    startup = await job.next_start()
    startup.finish()
    await ended(first, startup)
    await first.request_run(Source.HTTP, "by hand")
    manual = await job.next_start()
    manual.finish()
    await ended(first, manual)
    assert first.status()["cooldownUntil"] == iso(T0 + minutes(5))
    await first.stop()
    second = services.build(interval=2, cooldown=1)
    assert second.status()["cooldownUntil"] == iso(T0 + minutes(1))
    assert second.status()["nextRunAt"] == iso(T0 + minutes(2))


async def test_a_run_end_the_history_could_not_take_lands_once_it_can_without_a_restart(
    clock: FakeClock,
    job: ScriptedJob,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    services: Services,
) -> None:
    # Before: the end was lost, and the run showed as running in the history until the next start.
    import orchestrator.store.schema as schema_module
    from orchestrator.runner import HISTORY_RETRY

    caplog.set_level(logging.INFO, logger="orchestrator.runner.recording")
    service = await services.start()
    first = await job.next_start()
    history = service.history
    assert history is not None

    real_connect = schema_module.connect

    def no_descriptors(path: Path, *, check: bool = False) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(schema_module, "connect", no_descriptors)
    clock.advance(minutes(1))
    first.finish()
    await ended(service, first)
    clock.advance(HISTORY_RETRY)  # tried again on the clock: still failing, and not said again
    await settle()
    monkeypatch.setattr(schema_module, "connect", real_connect)
    stored = history.get(first.ctx.run_id)
    assert (stored.document if stored else {}).get("status") in (None, "running"), "the write failed"
    assert history.owed == 1

    clock.advance(HISTORY_RETRY)
    await settle()
    row = stored.document if (stored := history.get(first.ctx.run_id)) else {}
    assert (row["status"], row["finishedAt"]) == ("completed", iso(T0 + minutes(1)))
    assert history.owed == 0
    assert not history.unfinished()
    await service.stop()
    said = [r.getMessage() for r in caplog.records if "cannot record run" in r.getMessage()]
    assert len(said) == 1 and "kept, and written once the history can be written again" in said[0], said
    assert any("can be written again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_a_record_the_history_still_owes_is_tried_once_more_at_stop(
    job: ScriptedJob, monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    import orchestrator.store.schema as schema_module

    service = await services.start()
    first = await job.next_start()
    assert service.history is not None
    real_connect = schema_module.connect

    def no_descriptors(path: Path, *, check: bool = False) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(schema_module, "connect", no_descriptors)
    first.finish()
    await ended(service, first)
    monkeypatch.setattr(schema_module, "connect", real_connect)
    assert service.history.owed == 1
    await service.stop()  # before the retry is due
    stored = service.history.get(first.ctx.run_id)
    assert (stored.document if stored else {}).get("status") == "completed"
