"""Fault: ``kill -9`` of the service at any instant, over and over, on the same folders. A seeded loop drops
trigger files and POSTs triggers while real jobs run, kills the service at a chosen kind of instant (at random,
or within milliseconds of a state save, a trigger file's removal, a 202, a job's start or end, a history
write), restarts it, and at the end checks the promises rather than any code path (tests/faults/crashkit.py):

- never two jobs at once, across every crash (each job holds a lock that its own child inherits, so a job
  tree left running beside the next run shows as an overlap), and no process of an earlier run is alive once
  a restarted service answers;
- no acknowledged trigger is lost: every file that left the folder and every 202 is in a run that completed
  (or in a retry that was itself killed: a run is retried once);
- every run killed mid-way is retried once, and the history and the state agree: nothing stays ``running``.

The same with several jobs: tests/faults/test_crash_jobs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.crashkit import MOMENTS, Load, job_line
from tests.faults.crashlives import SEEDS, lives_and_breaks, verdict

pytestmark = pytest.mark.process

LOAD = Load(folders={"snapshot": ""}, posts_to={"snapshot": "/api/snapshot/trigger"}, files=8, posts=4)


@pytest.mark.parametrize("seed", SEEDS)
async def test_kill_9_at_any_instant_keeps_every_promise(
    tmp_path: Path, seed: int, reap: Callable[[Path], None]
) -> None:
    journal = tmp_path / "journal" / "runs.log"
    journal.parent.mkdir()
    args = ("--command", job_line(journal), "--interval", "60", "--keep-runs", "100000", "--kill-grace", "2")
    reap(tmp_path / "data")
    _, told, failures = await lives_and_breaks(tmp_path, args, load=LOAD, moments=MOMENTS, seed=seed, journal=journal)
    assert not failures, verdict(told, failures)
