"""The whole flow, end to end, against real service processes. (Shutdown and crash recovery are in the fault
suite, tests/faults/test_supervision.py.)"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.faults.harness import FileChanges
from tests.support import next_status, sample_command, sse_stream

pytestmark = pytest.mark.process


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
        assert (done["progress"]["status"], done["progress"]["step"], done["progress"]["progress"]) == (
            "completed",
            "Completed",
            100,
        )


async def test_touch_runs_the_job_and_the_file_is_consumed(service_factory: Any) -> None:
    service = service_factory("--command", sample_command(0.2), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        first = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
        (service.triggers_dir / "run-now").write_text("data refreshed")
        running = await next_status(events, lambda d: d["running"])
        assert running["currentRun"]["trigger"] == "file"
        assert running["currentRun"]["reason"] == "data refreshed"
        removal = FileChanges(service.triggers_dir / "run-now")  # removed once saved; the run may start first
        try:
            await removal.until(lambda: not (service.triggers_dir / "run-now").exists(), "removal of run-now")
        finally:
            removal.close()
        done = await next_status(events, lambda d: not d["running"])
        assert done["lastRun"]["runId"] != first["lastRun"]["runId"]
        assert done["lastRun"]["status"] == "completed"
