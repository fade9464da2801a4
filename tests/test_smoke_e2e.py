"""The whole flow, end to end, against real service processes: triggers, shutdown and crash recovery."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.support import ServiceProcess, alive, job_command, next_status, sample_command, sse_stream


async def test_startup_run_then_http_trigger(service_factory: Any) -> None:
    service = service_factory("--command", sample_command(0.3), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        first = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
        assert first["lastRun"]["status"] == "completed"
        assert first["lastRun"]["trigger"] == "startup"
        status, body = service.post_json("/api/snapshot/trigger", {"reason": "smoke"})
        assert status == 202 and body["success"] is True
        done = await next_status(
            events, lambda d: not d["running"] and d["lastRun"]["runId"] != first["lastRun"]["runId"]
        )
        assert done["lastRun"]["trigger"] == "http"
        assert done["lastRun"]["reason"] == "smoke"
        assert done["progress"] == {"status": "completed", "step": "Completed", "progress": 100}


async def test_touch_runs_the_job_and_the_file_is_consumed(service_factory: Any) -> None:
    service = service_factory("--command", sample_command(0.2), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        first = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
        (service.triggers_dir / "run-now").write_text("data refreshed")
        running = await next_status(events, lambda d: d["running"])
        assert running["currentRun"]["trigger"] == "file"
        assert running["currentRun"]["reason"] == "data refreshed"
        assert not (service.triggers_dir / "run-now").exists()
        done = await next_status(events, lambda d: not d["running"])
        assert done["lastRun"]["runId"] != first["lastRun"]["runId"]
        assert done["lastRun"]["status"] == "completed"


@asynccontextmanager
async def mid_run(service_factory: Any) -> AsyncIterator[tuple[ServiceProcess, dict[str, Any], int]]:
    """A service whose job is running, with an event stream open: (service, status, the job's pid)."""
    sleeper = "import os,time; print('PROGRESS 5', os.getpid(), flush=True); time.sleep(1000)"
    service = service_factory("--command", job_command(sleeper), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        running = await next_status(events, lambda d: d["progress"]["progress"] == 5)
        yield service, running, int(running["progress"]["step"])


async def test_sigterm_mid_run_stops_job_and_exits_zero_then_restart_does_not_rerun(service_factory: Any) -> None:
    async with mid_run(service_factory) as (service, _, job_pid):
        assert service.stop() == 0, "exits 0, and does not hang on the open event stream"
    assert not alive(job_pid)
    state = json.loads((service.data_dir / "orchestrator_state.json").read_text())
    assert state["lastRun"]["status"] == "cancelled"
    assert json.loads((service.data_dir / "snapshot_progress.json").read_text())["status"] == "cancelled"

    again = service_factory("--command", sample_command(0.1), "--interval", "60")
    doc = again.get_json("/api/snapshot/status")
    assert doc["running"] is False, "the cancelled run started less than an interval ago: nothing is due"
    assert doc["lastRun"]["runId"] == state["lastRun"]["runId"]


async def test_kill_9_mid_run_is_recorded_and_the_orphaned_job_is_stopped(service_factory: Any) -> None:
    async with mid_run(service_factory) as (service, running, job_pid):
        service.stop(signal.SIGKILL)
    assert alive(job_pid), "the job lives on in its own session: the service could not stop it"

    again = service_factory("--command", sample_command(0.1), "--interval", "60")
    doc = again.get_json("/api/snapshot/status")
    assert doc["lastRun"]["runId"] == running["currentRun"]["runId"]
    assert doc["lastRun"]["status"] == "error"
    assert doc["lastRun"]["error"] == "interrupted: service stopped"
    assert doc["running"] is False, "the schedule carries on from the interrupted run: nothing is due"
    assert doc["progress"]["status"] == "error"
    assert json.loads((again.data_dir / "snapshot_progress.json").read_text())["status"] == "error"
    assert not alive(job_pid), "stopped before the new service answered anything"
    again.wait_for_log("outlived the service; stopping it")
