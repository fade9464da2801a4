"""Several named jobs in one service, in process on a fake clock with scripted jobs: each its own schedule,
runs of different jobs at once up to max-parallel (the waiting in trigger order), chains, a job that starts
paused, and reloads that add, remove and change jobs while runs go, losing nothing pending."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source
from orchestrator.core.records import State
from orchestrator.jobsfile import load_jobs_file
from orchestrator.service import Orchestrator, ReloadRefused
from tests.fakes import WAIT, ScriptedJob, ScriptedRun, make_settings, minutes

THREE = """
max-parallel = 2

[jobs.snap]
command = "true"
interval = 30

[jobs.report]
command = "true"
after = ["snap"]

[jobs.nightly]
command = "true"
cron = "0 3 * * *"
timezone = "UTC"
"""


class Jobs:
    """A service of a jobs file, each job scripted (``job[name]``), on the test's fake clock."""

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root, self.clock = root, clock
        self.path = root / "jobs.toml"
        self.job: collections.defaultdict[str, ScriptedJob] = collections.defaultdict(ScriptedJob)
        self.service: Orchestrator | None = None

    async def start(self, text: str) -> Orchestrator:
        self.path.write_text(text)
        for folder in ("data", "triggers"):
            (self.root / folder).mkdir(exist_ok=True)
        self.service = Orchestrator(
            make_settings(self.root),
            clock=self.clock,
            jobs=load_jobs_file(self.path),
            load_jobs=lambda: load_jobs_file(self.path),
            job_for=lambda name: self.job[name],
        )
        await self.service.start()
        return self.service

    async def reload(self, text: str) -> str:
        assert self.service is not None
        self.path.write_text(text)
        return (await self.service.reload()).summary()


@pytest.fixture
async def jobs(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Jobs]:
    made = Jobs(tmp_path, clock)
    yield made
    if made.service is not None:
        await made.service.stop()


async def until(service: Orchestrator, condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds, looking again each time any job publishes a status (bounded)."""
    async with asyncio.timeout(WAIT):
        while not condition():
            waits = [asyncio.create_task(unit.next_after(unit.latest()[0])) for unit in service.units.values()]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()


async def finished(service: Orchestrator, name: str, run: ScriptedRun, status: RunStatus) -> None:
    run.finish(status, exit_code=0 if status is RunStatus.COMPLETED else 1)
    unit = service.job(name)
    await until(service, lambda: not unit.running and unit.state.last_run is not None)


async def test_each_job_has_its_schedule_and_a_completed_run_triggers_its_followers(jobs: Jobs) -> None:
    service = await jobs.start(THREE)
    assert list(service.units) == ["snap", "report", "nightly"] and service.default_job == "snap"
    first = await jobs.job["snap"].next_start()  # an interval job with no run on record runs at once
    report, nightly = service.job("report").status(), service.job("nightly").status()
    assert report["schedule"] == {"kind": "manual"} and report["nextRunAt"] is None
    assert report["secondsUntilNextRun"] is None and report["intervalMinutes"] is None
    assert nightly["schedule"] == {"kind": "cron", "expression": "0 3 * * *", "timezone": "UTC"}
    assert nightly["nextRunAt"] == "2026-01-21T03:00:00.000Z" and not nightly["running"]
    assert first.ctx.job == "snap"

    await finished(service, "snap", first, RunStatus.COMPLETED)
    followed = await jobs.job["report"].next_start()
    assert (followed.ctx.source, followed.ctx.reason) == (Source.AFTER, f"after snap {first.ctx.run_id}")
    assert followed.ctx.job == "report"
    await finished(service, "report", followed, RunStatus.COMPLETED)

    await service.job("snap").request_run(Source.HTTP, "again")
    failed = await jobs.job["snap"].next_start()
    await finished(service, "snap", failed, RunStatus.ERROR)
    assert service.job("report").state.pending_count == 0, "a failed run triggers nobody"
    assert service.job("report").state.last_run is not None

    jobs.clock.advance(minutes(17 * 60))  # 03:00 the next day
    nightly_run = await jobs.job["nightly"].next_start()
    assert nightly_run.ctx.source is Source.TIMER


async def test_runs_of_different_jobs_go_at_once_up_to_max_parallel_then_wait_in_trigger_order(
    jobs: Jobs,
) -> None:
    service = await jobs.start(THREE.replace("max-parallel = 2", "max-parallel = 1"))
    snap = await jobs.job["snap"].next_start()
    await service.job("nightly").request_run(Source.HTTP, "first asked")
    jobs.clock.advance(minutes(1))
    await service.job("report").request_run(Source.HTTP, "asked later")
    await until(service, lambda: service.job("nightly").waiting and service.job("report").waiting)
    assert service.job("nightly").status()["waiting"] is True
    assert not service.job("nightly").running and not service.job("report").running

    await finished(service, "snap", snap, RunStatus.ERROR)  # no chain: report waits for its own trigger only
    nightly = await jobs.job["nightly"].next_start()
    assert service.job("report").waiting and not service.job("report").running, "one slot: report waits"
    await finished(service, "nightly", nightly, RunStatus.COMPLETED)
    report = await jobs.job["report"].next_start()
    assert report.ctx.reason == "asked later" and not service.job("report").waiting
    await finished(service, "report", report, RunStatus.COMPLETED)


async def test_two_slots_let_two_jobs_run_at_once(jobs: Jobs) -> None:
    service = await jobs.start(THREE)
    snap = await jobs.job["snap"].next_start()
    await service.job("nightly").request_run(Source.HTTP, "now")
    nightly = await jobs.job["nightly"].next_start()
    assert service.job("snap").running and service.job("nightly").running
    await service.job("report").request_run(Source.HTTP, "third")
    await until(service, lambda: service.job("report").waiting)
    await finished(service, "nightly", nightly, RunStatus.COMPLETED)
    report = await jobs.job["report"].next_start()
    await finished(service, "report", report, RunStatus.COMPLETED)
    await finished(service, "snap", snap, RunStatus.COMPLETED)


async def test_a_job_the_file_says_is_paused_starts_paused_and_still_runs_on_triggers(jobs: Jobs) -> None:
    service = await jobs.start(THREE.replace('timezone = "UTC"', 'timezone = "UTC"\npaused = true'))
    status = service.job("nightly").status()
    assert status["paused"] is not None and status["paused"]["reason"] == "paused in the jobs file"
    await service.job("nightly").request_run(Source.HTTP, "by hand")
    run = await jobs.job["nightly"].next_start()
    await finished(service, "nightly", run, RunStatus.COMPLETED)


async def test_a_reload_adds_removes_and_changes_jobs_and_loses_nothing_pending(jobs: Jobs) -> None:
    service = await jobs.start(THREE)
    snap = await jobs.job["snap"].next_start()  # a run of a job the reload changes goes on
    changed = THREE.replace("interval = 30", "interval = 15").replace(
        '[jobs.nightly]\ncommand = "true"\ncron = "0 3 * * *"\ntimezone = "UTC"\n',
        '[jobs.index]\ncommand = "true"\ninterval = 60\n',
    )
    assert await jobs.reload(changed) == "added index; removed nightly; changed snap; 1 unchanged"
    index = await jobs.job["index"].next_start()  # added: it starts at once
    old = service.job("snap")
    assert old.closed and service.job("snap") is old, "the changed job's run goes on in its unit"
    await old.request_run(Source.HTTP, "while it is being replaced")
    assert old.state.pending_count == 1, "saved for its successor"

    await finished(service, "snap", snap, RunStatus.COMPLETED)
    await until(service, lambda: service.job("snap") is not old)
    new = service.job("snap")
    assert new.spec.interval_minutes == 15
    report = await jobs.job["report"].next_start()  # after the changed job's completed run, as before
    await until(service, lambda: new.waiting)  # two slots: index and report
    await finished(service, "report", report, RunStatus.COMPLETED)
    again = await jobs.job["snap"].next_start()
    assert again.ctx.reason == "while it is being replaced", "the pending trigger ran in the new unit"
    assert "nightly" not in service.units, "removed"
    await finished(service, "snap", again, RunStatus.COMPLETED)
    assert service.history.count(job="nightly") == 0
    await finished(service, "index", index, RunStatus.COMPLETED)


async def test_a_removed_job_s_run_finishes_and_its_history_stays(jobs: Jobs) -> None:
    service = await jobs.start(THREE)
    snap = await jobs.job["snap"].next_start()
    await finished(service, "snap", snap, RunStatus.COMPLETED)
    report = await jobs.job["report"].next_start()
    removed = THREE.replace('[jobs.report]\ncommand = "true"\nafter = ["snap"]\n', "")
    assert await jobs.reload(removed) == "removed report; 2 unchanged"
    assert "report" in service.units and not report.stopped.is_set(), "its run goes on"
    assert "report" not in service.jobs(), "but the job is served no more"
    with pytest.raises(KeyError):
        service.job("report")
    report.finish()
    await until(service, lambda: not service.units["report"].running)
    await service.table.settled()
    assert "report" not in service.units
    assert service.history.count(job="report") == 1
    assert jobs.job["report"].started.empty(), "a removed job runs no more"


async def test_a_file_that_cannot_be_used_leaves_the_running_jobs_as_they_are(jobs: Jobs) -> None:
    service = await jobs.start(THREE)
    snap = await jobs.job["snap"].next_start()
    units = dict(service.units)
    jobs.path.write_text(THREE.replace('cron = "0 3 * * *"', 'cron = "61 * * * *"'))
    with pytest.raises(ReloadRefused, match=r"jobs.toml: jobs.nightly.cron: bad cron expression '61 \* \* \* \*'"):
        await service.reload()
    jobs.path.write_text(THREE.replace("[jobs.snap]", '[jobs.snap]\ndefault-job = "x"'))
    with pytest.raises(ReloadRefused):
        await service.reload()
    assert dict(service.units) == units and not any(unit.closed for unit in units.values())
    await finished(service, "snap", snap, RunStatus.COMPLETED)


async def test_a_followers_trigger_is_saved_before_the_followed_run_s_outcome(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the two saves finds the followed run interrupted (it runs again), never a completed run
    whose followers were not asked."""
    service = await jobs.start(THREE)
    states = service.shared.states
    assert states is not None
    saves: list[tuple[str, bool, int]] = []
    save = states._save

    def recording(job: str, state: State) -> str:
        saves.append((job, state.current is None, state.pending_count))
        return save(job, state)

    monkeypatch.setattr(states, "_save", recording)
    snap = await jobs.job["snap"].next_start()
    await finished(service, "snap", snap, RunStatus.COMPLETED)
    follower = saves.index(("report", True, 1))
    outcome = saves.index(("snap", True, 0))  # the run saved as ended, nothing pending
    assert follower < outcome, saves
    await finished(service, "report", await jobs.job["report"].next_start(), RunStatus.COMPLETED)


async def test_a_symlink_where_a_jobs_folder_belongs_is_not_followed(
    jobs: Jobs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "report").symlink_to(elsewhere)
    (elsewhere / "planted").touch()
    service = await jobs.start(THREE)
    snap = await jobs.job["snap"].next_start()
    await finished(service, "snap", snap, RunStatus.ERROR)  # no chain: report runs only on its own triggers
    assert (tmp_path / "triggers" / "report").is_symlink(), "neither followed nor replaced"
    assert (elsewhere / "planted").exists(), "a file behind the link is not taken"
    assert service.job("report").state.pending_count == 0 and not service.job("report").running
    said = [r.getMessage() for r in caplog.records if "triggers/report" in r.getMessage()]
    assert len(said) == 1 and "is a symlink; refusing it" in said[0], "one line for the one problem"
