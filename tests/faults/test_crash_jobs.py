"""Fault: ``kill -9`` of a service of several jobs: what is left of every job's runs is stopped before any job
runs again, so ``max-parallel`` holds across a crash too."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import FileChanges
from tests.support import PYTHON

pytestmark = pytest.mark.process

LINGERING = r"""
import fcntl, os, signal, time
job = os.environ["SNAPSHOT_JOB"]

def linger(signum, frame):  # a second of clean-up when told to stop (told again meanwhile: it goes on)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(1)
    os._exit(143)

signal.signal(signal.SIGTERM, linger)

def slot(n):
    fd = os.open(f"slot-{n}", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until the process ends
        return True
    except BlockingIOError:
        return False

with open("runs.txt", "a") as out:
    out.write(f"{job} {'in a slot' if slot(0) or slot(1) else 'beyond max-parallel'}\n")
while os.environ["SNAPSHOT_REASON"] == "long":  # retried after a crash: quick
    time.sleep(1000)
"""


async def test_after_kill_9_no_run_starts_beside_what_is_left_of_another_jobs_runs(
    service_factory: Any, tmp_path: Path, reap: Callable[[Path], None]
) -> None:
    """Two jobs run, as many as may at once, and the service dies: their jobs live on, and take a second to
    end when told to. The next start stops every job's leftovers before any job runs: a run of a third job
    owed by then waits for them (it does not run beside what is left of the others); so do their retries."""
    (tmp_path / "job.py").write_text(LINGERING)
    defaults = f"max-parallel = 2\n[defaults]\ncommand = [{PYTHON!r}, 'job.py']\n"
    (tmp_path / "jobs.toml").write_text(defaults + "[jobs.a]\n[jobs.b]\n[jobs.c]\n")
    reap(tmp_path / "data")
    runs = FileChanges(tmp_path / "runs.txt")

    def lines() -> list[str]:
        path = tmp_path / "runs.txt"
        return path.read_text().splitlines() if path.exists() else []

    try:
        service = service_factory("--jobs", "jobs.toml")
        for job in ("b", "c"):
            assert service.post_json(f"/api/jobs/{job}/trigger", {"reason": "long"})[0] == 202
        await runs.until(lambda: len(lines()) == 2, "runs of b and c")
        service.stop(signal.SIGKILL)
        (tmp_path / "triggers" / "now").touch()  # a run of the default job, a, owed at the next start
        service_factory("--jobs", "jobs.toml")
        await runs.until(lambda: len(lines()) == 5, "a run of a, and the retries of b and c")
    finally:
        runs.close()
    assert sorted(lines()) == ["a in a slot", "b in a slot", "b in a slot", "c in a slot", "c in a slot"]
