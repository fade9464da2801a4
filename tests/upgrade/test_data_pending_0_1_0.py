"""Today's service on a data folder written just before there were several jobs, stopped with triggers pending
(see README.md here), with a jobs file and without one: the pending triggers run at start as one run of the
default job although its schedule is paused, the pause stays, and the old runs, the one the stop cancelled
included, read with their logs and steps as the default job's. With a jobs file, the other jobs start afresh."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from orchestrator.core.events import Source
from orchestrator.store.history import HISTORY_FILE_NAME, read_recent
from tests.support import PYTHON, ServiceProcess, job_command, next_status, saved_state, saved_states, sse_stream

pytestmark = pytest.mark.process

WRITTEN_BEFORE_JOBS = Path(__file__).with_name("data-pending-0.1.0")
OLD_RUNS = [  # newest first, as the history lists them
    ("20261207T143551Z-1625c2", "cancelled", "http", "wait for the gate"),
    ("20261207T143550Z-5713f9", "error", "http", "fail"),
    ("20261207T143546Z-e5fa56", "completed", "startup", "scheduled"),
]
CANCELLED_RUN = ("20261207T143551Z-1625c2", "cancelled", "service stopped")
"""The run going on when the service was stopped: id, status, error."""
PENDING = [(Source.HTTP, "queued while busy"), (Source.FILE, "dropped in the folder")]
"""The triggers that came during that run, in order: pending when the service stopped."""
PAUSED = {"since": "2026-12-07T14:35:56.413Z", "reason": "maintenance"}
FIRST_STEPS = ["Starting...", "Connecting to GitHub...", "Fetching GitHub PRs... (8/15 repos)"]
OLD_STEPS = {
    "20261207T143551Z-1625c2": [*FIRST_STEPS, "Waiting for the gate file"],
    "20261207T143550Z-5713f9": FIRST_STEPS,
    "20261207T143546Z-e5fa56": [*FIRST_STEPS, "Snapshot written"],
}
"""The steps each old run recorded (the version that wrote them recorded steps)."""

SNAPSHOT_JOB = """
import os
print("PROGRESS 50 Taking the snapshot", flush=True)
print("job", os.environ.get("SNAPSHOT_JOB"), "for", os.environ["SNAPSHOT_REASON"], flush=True)
"""
JOBS_FILE = """
default-job = "snapshot"

[jobs.report]
command = [{python}, "-c", "print('PROGRESS 100 Report written')"]
after = ["snapshot"]

[jobs.snapshot]
command = [{python}, "-c", {snapshot}]
interval = 600

[jobs.adhoc]
command = [{python}, "-c", "print('by hand only')"]
"""
"""The default job (not the first table: ``default-job`` says it), a job that follows it and one run by hand
only. JSON strings are TOML basic strings."""


def get(service: ServiceProcess, path: str) -> Any:
    answer = requests.get(service.url + path, timeout=10)
    assert answer.status_code == 200, (path, answer.status_code, answer.text)
    return answer.json() if answer.headers["Content-Type"].startswith("application/json") else answer.text


def start_upgraded(service_factory: Any, root: Path, *, jobs_file: bool) -> ServiceProcess:
    """Today's service started on a copy of the old data folder: with a jobs file, or with flags alone."""
    data = root / "data"
    shutil.copytree(WRITTEN_BEFORE_JOBS, data)
    data.chmod(0o700)
    if not jobs_file:
        service: ServiceProcess = service_factory("--command", job_command(SNAPSHOT_JOB), "--interval", "600")
        return service
    path = root / "jobs.toml"
    path.write_text(JOBS_FILE.format(python=json.dumps(PYTHON), snapshot=json.dumps(SNAPSHOT_JOB)))
    service = service_factory("--jobs", str(path))
    return service


async def pending_run(service: ServiceProcess) -> dict[str, Any]:
    """The default job's status once the run of the pending triggers has ended (it starts with the service)."""
    old = {run[0] for run in OLD_RUNS}
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        return await next_status(events, lambda doc: doc["lastRun"]["runId"] not in old and not doc["running"])


@pytest.mark.parametrize("jobs_file", [True, False], ids=["jobs-file", "flags"])
async def test_the_pending_triggers_run_as_one_run_of_the_default_job_and_the_pause_stays(
    service_factory: Any, tmp_path: Path, jobs_file: bool
) -> None:
    service = start_upgraded(service_factory, tmp_path, jobs_file=jobs_file)
    done = await pending_run(service)
    last = done["lastRun"]
    assert (last["job"], last["status"], last["trigger"]) == ("snapshot", "completed", "http"), service.logs()
    assert [(t["source"], t["reason"]) for t in last["triggers"]] == [(s.value, r) for s, r in PENDING]
    assert (last["triggerCount"], last["reason"]) == (2, "queued while busy; dropped in the folder")
    assert last["queuedAt"] == last["triggers"][0]["at"], "queued since the first of them, before the upgrade"
    assert (done["job"], done["pendingTriggers"], done["queued"]) == ("snapshot", 0, False)
    assert done["paused"] == PAUSED, "the schedule stays paused; triggers run while it is, as before"
    new_id = last["runId"]
    assert await asyncio.to_thread(get, service, f"/api/snapshot/runs/{new_id}") == last
    log = await asyncio.to_thread(get, service, f"/api/snapshot/runs/{new_id}/log")
    assert "job snapshot for queued while busy; dropped in the folder" in log, "the job is told both reasons"

    status = await asyncio.to_thread(get, service, "/api/snapshot/status")
    assert (status["paused"], status["running"], status["lastRun"]["runId"]) == (PAUSED, False, new_id)
    saved = saved_state(service.data_dir)  # written in the new form at the first save
    assert (saved["pending"], saved["pendingCount"], saved["paused"]) == ([], 0, PAUSED)
    assert (saved["lastRun"]["runId"], saved["lastRun"]["job"], saved["current"]) == (new_id, "snapshot", None)

    runs = (await asyncio.to_thread(get, service, "/api/snapshot/runs"))["runs"]
    mine = [r for r in runs if r["job"] == "snapshot"]
    assert [r["runId"] for r in mine] == [new_id, *(run[0] for run in OLD_RUNS)]
    assert [(r["runId"], r["status"], r["trigger"], r["reason"]) for r in mine[1:]] == OLD_RUNS
    cancelled = mine[1]
    assert (cancelled["runId"], cancelled["status"], cancelled["error"]) == CANCELLED_RUN
    assert cancelled["step"] == "Waiting for the gate file"
    assert "GitHub answered 502" in mine[2]["error"]
    for run_id, status_of_run, *_ in OLD_RUNS:
        log = await asyncio.to_thread(get, service, f"/api/snapshot/runs/{run_id}/log")
        assert log == (WRITTEN_BEFORE_JOBS / "logs" / f"{run_id}.log").read_text()
        steps = await asyncio.to_thread(get, service, f"/api/snapshot/runs/{run_id}/steps")
        assert (steps["status"], [step["name"] for step in steps["steps"]]) == (status_of_run, OLD_STEPS[run_id])


async def test_with_a_jobs_file_the_other_jobs_start_afresh_and_follow_the_upgraded_run(
    service_factory: Any, tmp_path: Path
) -> None:
    service = start_upgraded(service_factory, tmp_path, jobs_file=True)
    new_id = (await pending_run(service))["lastRun"]["runId"]
    # The follower's run: the only one it has; its id is known once it started.
    await asyncio.to_thread(service.wait_for_log, f"run {new_id} of snapshot completed: report runs after it")
    await asyncio.to_thread(service.wait_for_log, "(after)")
    started = re.search(r"run (\S+): started pid \d+ \(after\)", service.logs())
    assert started is not None, service.logs()
    await asyncio.to_thread(service.wait_for_log, f"run {started[1]} completed")

    runs = read_recent(service.data_dir / HISTORY_FILE_NAME, 10)
    by_job = {job: [r for r in runs if r["job"] == job] for job in ("snapshot", "report", "adhoc")}
    assert [r["runId"] for r in by_job["snapshot"]] == [new_id, *(run[0] for run in OLD_RUNS)]
    assert [(r["runId"], r["trigger"], r["reason"]) for r in by_job["report"]] == [
        (started[1], "after", f"after snapshot {new_id}")
    ], "none of the old runs are the follower's"
    assert by_job["adhoc"] == []
    assert len(runs) == 5

    states = saved_states(service.data_dir)
    assert states["snapshot"]["paused"] == PAUSED
    assert states["report"]["paused"] is None and states["report"]["lastRun"]["runId"] == started[1]
    assert states.get("adhoc", {}).get("paused") is None, "no pause but the default job's"
