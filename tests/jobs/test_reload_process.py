"""SIGHUP to a real service while runs go on: the file read again whole, a changed job's run finishes as it
began and its successor runs the trigger that came meanwhile, a removed job runs no more, an added one starts,
and a broken file leaves everything as it was."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import PYTHON, ServiceProcess, next_status, saved_states, sse_stream

pytestmark = pytest.mark.process

JOB = """
import os, pathlib, sys, time
name, arg = os.environ["SNAPSHOT_JOB"], sys.argv[1]
with open("runs.txt", "a") as out:
    out.write(f"{name} {arg} {os.environ['SNAPSHOT_TRIGGER']} {os.environ['SNAPSHOT_REASON']}\\n")
print(f"PROGRESS 50 {name} {arg} begins", flush=True)
gate = pathlib.Path(f"gate-{name}")
while arg == "wait" and not gate.exists():
    time.sleep(0.02)
"""


def jobs(*tables: tuple[str, str, str]) -> str:
    """A jobs file: each table (name, the job's argument, its schedule line)."""
    text = 'default-job = "snap"\n[defaults]\ncwd = "work"\n'
    for name, arg, schedule in tables:
        text += f'\n[jobs.{name}]\ncommand = [{PYTHON!r}, "job.py", {arg!r}]\n{schedule}\n'
    return text


SNAP = ("snap", "quick", "interval = 525600")
SLOW = ("slow", "wait", "")
GONE = ("gone", "quick", "")


def lines(root: Path) -> list[str]:
    return (root / "work" / "runs.txt").read_text().splitlines()


async def logged(service: ServiceProcess, text: str, count: int = 1) -> None:
    await asyncio.to_thread(service.wait_for_log, text, 30, count)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "job.py").write_text(JOB)
    (tmp_path / "jobs.toml").write_text(jobs(SNAP, SLOW, GONE))
    return tmp_path


async def test_sighup_while_runs_go_on_applies_the_file_and_loses_nothing(service_factory: Any, root: Path) -> None:
    service: ServiceProcess = service_factory("--jobs", "jobs.toml", "--log-level", "info")
    await logged(service, "snap: run", 2)  # the interval job's first run: started, completed (its line written)
    (root / "triggers" / "gone" / "once").touch()
    await logged(service, "gone: run", 2)  # started, completed
    (root / "triggers" / "slow" / "go").touch()
    await logged(service, "slow: run", 1)  # its job started, and waits for its gate

    extra = ("extra", "quick", "interval = 525600")
    (root / "jobs.toml").write_text(jobs(SNAP, ("slow", "changed", ""), extra))
    service.proc.send_signal(signal.SIGHUP)
    await logged(service, "jobs file read again: added extra; removed gone; changed slow; 1 unchanged")
    await logged(service, "extra: run")
    (root / "triggers" / "slow" / "meanwhile").touch()  # the changed job's old unit takes it for its successor
    await logged(service, "file trigger during run")
    assert "slow changed" not in (root / "work" / "runs.txt").read_text(), "the running run goes on as it began"

    (root / "jobs.toml").write_text(jobs(SNAP).replace("interval", "intervall"))
    service.proc.send_signal(signal.SIGHUP)
    await logged(service, "reload refused, the running jobs stay: jobs.toml: jobs.snap.intervall: unknown key")

    (root / "work" / "gate-slow").touch()
    await logged(service, "job slow changed")
    await logged(service, "slow: run", 4)  # started, ended; the successor's started, ended
    state = {"jobs": saved_states(root / "data")}
    assert sorted(state["jobs"]) == ["extra", "gone", "slow", "snap"], "a removed job's state stays"
    assert service.stop() == 0
    runs = lines(root)
    assert runs[:3] == ["snap quick startup scheduled", "gone quick file once", "slow wait file go"]
    assert "slow changed file meanwhile" in runs and "extra quick startup scheduled" in runs
    assert [line for line in runs if line.startswith("gone")] == ["gone quick file once"], "none after its removal"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: its parent, gone with the first service, cannot reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_job_gone_from_the_file_across_a_crash_has_its_run_closed_and_its_process_stopped(
    service_factory: Any, root: Path
) -> None:
    first: ServiceProcess = service_factory("--jobs", "jobs.toml")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, first.url + "/api/jobs/slow/events")
        (root / "triggers" / "slow" / "go").touch()
        # Its job reported: it runs (its process group saved), and waits for a gate that never comes.
        await next_status(events, lambda doc: doc["progress"]["progress"] == 50)
    state = {"jobs": saved_states(root / "data")}
    run = state["jobs"]["slow"]["current"]
    assert run is not None and alive(run["pid"])
    first.stop(signal.SIGKILL)
    assert alive(run["pid"]), "a crash leaves the job running"

    (root / "jobs.toml").write_text(jobs(SNAP, GONE))
    second: ServiceProcess = service_factory("--jobs", "jobs.toml")
    await logged(second, "job slow is not in the jobs file, but a run of it was in flight: closing it")
    # Ready means started: the run was closed and its process group stopped before the service answered.
    assert not alive(run["pid"]), "stopped before any job starts"
    state = {"jobs": saved_states(root / "data")}
    assert state["jobs"]["slow"]["current"] is None and state["jobs"]["slow"]["leftovers"] == []
    recorded = second.get_json("/api/runs?limit=10")["runs"]
    slow = [r for r in recorded if r["job"] == "slow"]
    assert [(r["runId"], r["status"]) for r in slow] == [(run["runId"], "error")]
    assert second.stop() == 0
