"""Fault: ``kill -9`` of a service of several jobs at any instant, over and over, on the same folders (the
machinery of tests/faults/test_crash_promises.py: tests/faults/crashkit.py, crashlives.py). Three jobs of one
file, real processes, at most two runs at once: ``a`` on an interval, ``b`` after each completed run of ``a``,
``c`` manual (the runs of ``a`` and ``c`` the longest). Each round drops trigger files into ``triggers/`` (the
default job, ``a``) and ``triggers/c/``, POSTs to every job's ``/api/jobs/{job}/trigger``, and kills the
service at a chosen kind of instant: those of the one-job suite, and just after a run of ``a`` ends (its
process ends, its outcome is saved, it is logged as completed). At the end, per job:

- never two runs of one job at once, never more runs of different jobs at once than ``max-parallel``, across
  every crash; no process of an earlier run alive once a restarted service answers;
- no acknowledged trigger lost (every file that left its folder, every 202 of that job is in a run of that job
  that completed, or in a retry that was itself killed);
- chains: every run of ``a`` that the history has as completed is followed by a run of ``b`` whose triggers
  name it (a run of ``b`` may absorb several, and names each); the follower's trigger is saved before the
  run's outcome, so this holds across every crash, strictly;
- every run killed mid-way is retried once, the history and the state agree, nothing stays ``running``.

And the crash that the loop found beyond ``max-parallel``, made on purpose: two jobs' leftovers and a third
job's run owed at the next start.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.crashkit import MOMENTS, Load, job_line
from tests.faults.crashlives import SEEDS, lives_and_breaks, verdict
from tests.faults.harness import FileChanges
from tests.support import PYTHON

pytestmark = pytest.mark.process

JOBS = ("a", "b", "c")
MAX_PARALLEL = 2
LOAD = Load(
    folders={"a": "", "c": "c"},
    posts_to={job: f"/api/jobs/{job}/trigger" for job in JOBS},
    files=5,
    posts=2,
)
JOBS_MOMENTS = (*MOMENTS, "a-job-end", "a-saved", "a-completed")


def jobs_file(journal: Path) -> str:
    """``a`` on an interval, ``b`` after it, ``c`` manual; at most two at once. The runs of ``a`` and ``c`` are
    long enough for what is left of them to live through a restart after a crash."""

    def command(longest: float) -> str:
        return json.dumps(job_line(journal, longest=longest, slots=MAX_PARALLEL))  # a TOML string as well

    return (
        f"max-parallel = {MAX_PARALLEL}\n[defaults]\nkill-grace = 2\n"
        f"[jobs.a]\ncommand = {command(0.8)}\ninterval = 60\n"
        f'[jobs.b]\ncommand = {command(0.25)}\nafter = ["a"]\n'
        f"[jobs.c]\ncommand = {command(1.2)}\n"
    )


def chain_breaks(a_runs: list[dict[str, Any]], b_runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Completed runs of ``a`` that no run of ``b`` followed, and runs of ``b`` after a run ``a`` never had.

    A run of ``b`` names each trigger it absorbed (however many ran at once: none is beyond the named ones
    here), so each completed run of ``a`` must be named by its own trigger: in a run of ``b`` that completed,
    or in two that were killed (a trigger is retried once, not for ever)."""

    def named(runs: list[dict[str, Any]]) -> list[str]:
        return [t["reason"].split()[2] for r in runs for t in r["triggers"] if t["reason"].startswith("after a ")]

    followed = set(named([r for r in b_runs if r["status"] == "completed"]))
    killed = Counter(named([r for r in b_runs if (r["error"] or "").startswith("interrupted")]))
    return {
        "completed runs of a with no run of b after them": [
            run["runId"]
            for run in a_runs
            if run["status"] == "completed" and run["runId"] not in followed and killed[run["runId"]] < 2
        ],
        "runs of b after a run of a not in its history": sorted({*followed, *killed} - {r["runId"] for r in a_runs}),
    }


@pytest.mark.parametrize("seed", SEEDS)
async def test_kill_9_with_several_jobs_keeps_every_promise_of_each(
    tmp_path: Path, seed: int, reap: Callable[[Path], None]
) -> None:
    journal = tmp_path / "journal" / "runs.log"
    journal.parent.mkdir()
    (tmp_path / "jobs.toml").write_text(jobs_file(journal))
    args = ("--jobs", os.fspath(tmp_path / "jobs.toml"), "--keep-runs", "100000")
    reap(tmp_path / "data")
    runs, told, failures = await lives_and_breaks(
        tmp_path, args, load=LOAD, moments=JOBS_MOMENTS, seed=seed, journal=journal
    )
    failures |= {promise: found for promise, found in chain_breaks(runs["a"], runs["b"]).items() if found}
    assert not failures, verdict(told, failures)


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
