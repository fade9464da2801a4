"""Fault injection: a job that reports steps badly, through both forms. A real service runs a real job that
prints unknown fields, absurd counts, a step name of 100 KiB, non-JSON after ``PROGRESS``, 10,000 distinct step
names, then writes a bad progress document itself. The run must complete, keep at most a thousand steps (the
rest folded into one), and the service must say each kind of problem in one line, not once per report."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.core.steps import MAX_NAME_CHARS, MAX_STEPS, MORE_STEPS
from tests.support import job_command, next_status, sse_stream

pytestmark = pytest.mark.process

JOB = r"""
import json, os, sys
def say(line):
    print(line, flush=True)
say('PROGRESS {"percent": 1, "step": "Counting", "colour": "red", "size": 3}')
say('PROGRESS {"percent": 2, "colour": "blue"}')
say('PROGRESS {"done": -5, "total": 3}')
say('PROGRESS {"done": 10, "total": 3}')
say('PROGRESS {"total": 10000000000000000}')
say('PROGRESS {"percent": "lots"}')
say('PROGRESS {not json at all}')
say("PROGRESS 3 " + "N" * 100 * 1024)
say('PROGRESS {"step": "Detail", "detail": "' + "d" * 4000 + '"}')
for n in range(10000):
    print(f"PROGRESS {n / 100:.2f} name {n}")
sys.stdout.flush()
# The job's own progress document, with counts that make no sense. Written again until the test has seen the
# service take it: the service's own write of the job's last line may land just after it and hide it.
import time
path = os.environ["SNAPSHOT_PROGRESS_FILE"]
doc = {"status": "running", "runId": os.environ["SNAPSHOT_RUN_ID"], "progress": 99, "step": "Writing",
       "done": 7, "total": 2, "detail": 5}
while not os.path.exists(os.environ["GATE"]):
    with open(path + ".tmp", "w") as out:
        json.dump(doc, out)
    os.replace(path + ".tmp", path)
    time.sleep(0.05)
"""


def steps_of(data: Path, run_id: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(data / "runs.sqlite3")
    try:
        row = db.execute("SELECT steps FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    assert row is not None and row[0] is not None
    steps: list[dict[str, Any]] = json.loads(row[0])
    return steps


async def test_bad_step_reports_are_cut_down_said_once_and_never_break_the_run(
    service_factory: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    service = service_factory("--command", job_command(JOB), "--interval", "60", env={"GATE": str(gate)})
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        service.wait_for_log("detail is not a string", timeout=30)  # the job's own document, taken while it runs
        gate.touch()
        done = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"], timeout=60)
    last = done["lastRun"]
    assert last["status"] == "completed", last
    steps = steps_of(service.data_dir, last["runId"])
    assert len(steps) == MAX_STEPS
    names = [step["name"] for step in steps]
    assert names[:3] == ["Starting...", "Counting", "N" * MAX_NAME_CHARS]
    assert names[-1] == MORE_STEPS
    assert steps[0]["endedAt"] is not None and steps[-1]["endedAt"] is not None
    detail = next(step for step in steps if step["name"] == "Detail")["detail"]
    assert len(detail) == 500
    kinds = [
        "unknown keys 'colour', 'size' ignored",
        "unknown key 'colour' ignored",
        "done is not a count",
        "done 10 is more than total 3",
        "total is not a count",
        "percent is not a number",
        "a report that is not JSON ignored",
        "step of 8206 characters cut",  # the line was cut at 8 KiB on the way in (and marked so)
        "detail of 4000 characters cut",
        f"more than {MAX_STEPS} steps",
    ]
    # The job's own document: what was cut from it is said too, once per kind (its counts are a kind said already).
    from_file = ["detail is not a string"]
    for kind in kinds + from_file:
        service.wait_for_log(kind)  # the service's output is copied by a thread: wait for it, bounded
    said = [line for line in service.logs().splitlines() if "progress report:" in line]
    for kind in kinds + from_file:
        assert sum(kind in line for line in said) == 1, (kind, said)
    assert len(said) == len(kinds) + len(from_file), said
