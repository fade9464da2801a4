"""Today's service on a data folder written by 0.1.0 (before runs had steps, and before there were several jobs;
see README.md here): its runs, their logs and its pause read as they were, as the default job's, its runs have no
steps, and a new run records its steps beside them."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from tests.support import (
    STEPS_JOB,
    STEPS_JOB_STEPS,
    ServiceProcess,
    job_command,
    next_status,
    saved_state,
    sse_stream,
)

pytestmark = pytest.mark.process

WRITTEN_BY_0_1_0 = Path(__file__).with_name("data-0.1.0")
OLD_RUNS = [  # newest first, as the history lists them
    ("20261207T121017Z-02d045", "completed", "http", "by hand"),
    ("20261207T121017Z-a8e8f0", "error", "http", "fail"),
    ("20261207T121016Z-8d44b3", "completed", "startup", "scheduled"),
]


def get(service: ServiceProcess, path: str) -> Any:
    answer = requests.get(service.url + path, timeout=10)
    assert answer.status_code == 200, (path, answer.status_code, answer.text)
    return answer.json() if answer.headers["Content-Type"].startswith("application/json") else answer.text


@pytest.fixture
def upgraded(service_factory: Any, tmp_path: Path) -> ServiceProcess:
    """Today's service started on a copy of the old data folder, with a job that reports its steps."""
    data = tmp_path / "data"
    shutil.copytree(WRITTEN_BY_0_1_0, data)
    data.chmod(0o700)
    service: ServiceProcess = service_factory("--command", job_command(STEPS_JOB), "--interval", "600")
    return service


async def test_the_old_runs_logs_and_pause_read_and_their_runs_have_no_steps(upgraded: ServiceProcess) -> None:
    runs = (await asyncio.to_thread(get, upgraded, "/api/snapshot/runs"))["runs"]
    assert [(r["runId"], r["status"], r["trigger"], r["reason"]) for r in runs] == OLD_RUNS
    assert {r["job"] for r in runs} == {"snapshot"}, "the runs of the one job it had are the default job's"
    assert "GitHub answered 502" in runs[1]["error"]
    for run_id, status, _trigger, _reason in OLD_RUNS:
        log = await asyncio.to_thread(get, upgraded, f"/api/snapshot/runs/{run_id}/log")
        assert log == (WRITTEN_BY_0_1_0 / "logs" / f"{run_id}.log").read_text()
        steps = await asyncio.to_thread(get, upgraded, f"/api/snapshot/runs/{run_id}/steps")
        assert steps == {"runId": run_id, "status": status, "steps": [], "truncated": False}
    status = await asyncio.to_thread(get, upgraded, "/api/snapshot/status")
    assert status["paused"] == {"since": "2026-12-07T12:10:17.297Z", "reason": "maintenance"}
    assert (status["running"], status["lastRun"]["runId"]) == (False, OLD_RUNS[0][0]), "paused: nothing ran"
    figures = await asyncio.to_thread(get, upgraded, "/api/snapshot/steps")
    assert (figures["runs"], figures["steps"]) == (0, []), "runs without steps say nothing of where time goes"


async def test_a_new_run_records_its_steps_beside_the_old_runs(upgraded: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, upgraded.url + "/api/snapshot/events")
        await next_status(events, lambda doc: doc["lastRun"]["runId"] == OLD_RUNS[0][0])
        asked = await asyncio.to_thread(
            requests.post, upgraded.url + "/api/snapshot/trigger", json={"reason": "after the upgrade"}, timeout=10
        )
        assert asked.status_code == 202, asked.text
        done = await next_status(
            events, lambda doc: doc["lastRun"]["reason"] == "after the upgrade" and not doc["running"]
        )
    assert done["lastRun"]["status"] == "completed", upgraded.logs()
    assert done["paused"]["reason"] == "maintenance", "a manual run leaves the pause alone"
    new_id = done["lastRun"]["runId"]
    saved = saved_state(upgraded.data_dir)  # the state file, written in the new form, every job's in one
    assert (saved["paused"]["reason"], saved["lastRun"]["runId"], saved["lastRun"]["job"]) == (
        "maintenance",
        new_id,
        "snapshot",
    )

    timeline = await asyncio.to_thread(get, upgraded, f"/api/snapshot/runs/{new_id}/steps")
    assert (timeline["status"], timeline["truncated"]) == ("completed", False)
    assert [step["name"] for step in timeline["steps"]] == STEPS_JOB_STEPS
    fetching = timeline["steps"][2]
    assert (fetching["detail"], fetching["done"], fetching["total"]) == ("repo 3/3: octo/r3", 3, 3)
    assert (fetching["percentStart"], fetching["percentEnd"]) == (35, 85)
    assert timeline["steps"][-1]["percentEnd"] == 100
    assert all(step["durationSeconds"] is not None for step in timeline["steps"])

    runs = (await asyncio.to_thread(get, upgraded, "/api/snapshot/runs"))["runs"]
    assert [r["runId"] for r in runs] == [new_id, *(run[0] for run in OLD_RUNS)]
    for run_id, *_ in OLD_RUNS:
        old = await asyncio.to_thread(get, upgraded, f"/api/snapshot/runs/{run_id}/steps")
        assert old["steps"] == [], run_id
    figures = await asyncio.to_thread(get, upgraded, "/api/snapshot/steps")
    assert (figures["runs"], figures["runIds"], figures["latestRunId"]) == (1, [new_id], new_id)
    assert [step["name"] for step in figures["steps"]] == STEPS_JOB_STEPS
