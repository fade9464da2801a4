"""Three jobs of one file, their jobs real processes: an interval job, a job run after it, and a calendar job
driven on a fake clock through both daylight-saving days of Europe/Berlin (no run skipped in the gap, none
doubled in the repeated hour), each job told its name and run in its own folder."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.jobsfile import load_jobs_file
from orchestrator.service import Orchestrator
from orchestrator.unit import JobUnit
from tests.fakes import make_settings

pytestmark = pytest.mark.process

WAIT = 30.0
JOB = """
import os, pathlib
pathlib.Path("runs.txt").open("a").write(
    " ".join([os.environ["SNAPSHOT_JOB"], os.environ["SNAPSHOT_TRIGGER"], os.environ["SNAPSHOT_REASON"]]) + "\\n"
)
print("PROGRESS 100 done", flush=True)
"""
FILE = """
default-job = "snap"
max-parallel = 2

[defaults]
command = [{python!r}, "job.py"]
cwd = "work"

[jobs.snap]
interval = 525600

[jobs.report]
after = ["snap"]

[jobs.nightly]
cron = "30 2 * * *"
timezone = "Europe/Berlin"
"""


def berlin(text: str) -> datetime:
    """A time written on Berlin's clock with its offset, in UTC: an aware time in a zone's repeated hour never
    equals one in another zone (PEP 495), so times are compared in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Orchestrator]:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "job.py").write_text(JOB)
    for folder in ("data", "triggers"):
        (tmp_path / folder).mkdir()
    path = tmp_path / "jobs.toml"
    path.write_text(FILE.format(python=sys.executable))
    clock = FakeClock(berlin("2026-03-28T02:00+01:00"))
    made = Orchestrator(make_settings(tmp_path), clock=clock, jobs=load_jobs_file(path))
    await made.start()
    yield made
    await made.stop()


async def until(unit: JobUnit, condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds, woken by each status the job's unit publishes (bounded)."""
    version, _ = unit.latest()
    async with asyncio.timeout(WAIT):
        while not condition():
            version, _ = await unit.next_after(version)


async def ran(unit: JobUnit, runs: int) -> None:
    """Until the job has ended ``runs`` runs in all (the history says so) and runs none."""
    await until(unit, lambda: not unit.running and not unit.state.pending_count and ended(unit) >= runs)


def ended(unit: JobUnit) -> int:
    return unit.runner.triggers_received.total() - unit.state.pending_count - (1 if unit.running else 0)


async def test_an_interval_job_its_follower_and_a_calendar_job_across_both_daylight_saving_days(
    service: Orchestrator, tmp_path: Path
) -> None:
    clock = service.clock
    assert isinstance(clock, FakeClock)
    snap, report, nightly = (service.job(name) for name in ("snap", "report", "nightly"))
    await ran(snap, 1)  # no run on record: at once
    await ran(report, 1)  # after it
    expected = [
        ("2026-03-28T02:30+01:00", "2026-03-29T03:00+02:00"),  # the day of the gap: 02:30 is not a time
        ("2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"),
        ("2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"),  # the first 02:30 of the repeated hour, once
    ]
    assert nightly.next_run_at() == berlin(expected[0][0])
    count = 0
    for at, following in expected:
        if at.startswith("2026-10"):
            clock.advance(berlin("2026-10-25T00:00+02:00") - clock.now())  # long after: due once at once...
            count += 1
            await ran(nightly, count)
            assert nightly.next_run_at() == berlin(at), "...then on the calendar again"
        clock.advance(berlin(at) - clock.now())
        count += 1
        await ran(nightly, count)
        assert nightly.next_run_at() == berlin(following), f"after the run at {at}"
    clock.advance(berlin("2026-10-25T02:59+01:00") - clock.now())  # through the repeated hour: no second run
    assert nightly.next_run_at() == berlin("2026-10-26T02:30+01:00") and not nightly.running

    (tmp_path / "triggers" / "report" / "run-now").touch()  # a job's own folder
    await ran(report, 2)
    (tmp_path / "triggers" / "run-now").touch()  # the triggers folder itself: the default job
    await ran(snap, 2)
    await ran(report, 3)  # after it

    lines = (tmp_path / "work" / "runs.txt").read_text().splitlines()
    snap_runs = [run.run_id for run in service.history.page(job="snap").runs]
    assert lines[:2] == ["snap startup scheduled", f"report after after snap {snap_runs[1]}"]
    assert lines[2:] == ["nightly timer scheduled"] * 4 + [
        "report file run-now",
        "snap file run-now",
        f"report after after snap {snap_runs[0]}",
    ]
    assert not any((tmp_path / "triggers").glob("**/run-now")), "each file taken"
    assert [run.job for run in service.history.page(limit=10).runs].count("nightly") == 4
    assert (tmp_path / "data" / "nightly_progress.json").is_file() and (tmp_path / "triggers" / "report").is_dir()
