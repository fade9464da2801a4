"""Reading the jobs file again over HTTP (``POST /api/reload``) and on SIGHUP, in process: a file that cannot be
used is refused with its one line and the jobs stay; a service without a jobs file refuses; SIGHUP reloads,
survives a broken file, and its handler is put back when the app stops. A real process gets SIGHUP last."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from orchestrator.core.clock import FakeClock
from orchestrator.http.app import create_app
from orchestrator.service import Orchestrator
from tests.fakes import Client, ScriptedJob, end_startup
from tests.http.conftest import JOBS, JOBS_FILE, several_jobs
from tests.support import ServiceProcess, next_status, sse_stream

WAIT = 10.0


@pytest.fixture
async def started(jobs_client: Client, jobs_service: Orchestrator, job: ScriptedJob) -> Client:
    await end_startup(jobs_service, job)
    return jobs_client


async def job_names(client: Client) -> list[str]:
    return [doc["job"] for doc in (await (await client.get("/api/jobs")).json())["jobs"]]


async def test_a_file_that_cannot_be_used_is_refused_with_its_line_and_the_jobs_stay(
    started: Client, jobs_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs_path.write_text(
        JOBS_FILE.replace('cron = "0 3 * * *"', 'cron = "61 * * * *"') + '\n[jobs.extra]\ncommand = "true"\n'
    )
    answer = await started.post("/api/reload")
    assert answer.status == 409
    body = await answer.json()
    assert body["success"] is False
    assert body["message"].startswith(f"{jobs_path}: jobs.nightly.cron: bad cron expression '61 * * * *'"), body
    assert "\n" not in body["message"]
    assert await job_names(started) == JOBS
    assert any("reload refused, the running jobs stay" in r.getMessage() for r in caplog.records)
    broken_toml = "[jobs.main\ncommand = 1\n"
    jobs_path.write_text(broken_toml)
    refused = await (await started.post("/api/reload")).json()
    assert "line 1" in refused["message"], refused
    assert await job_names(started) == JOBS


async def test_a_service_without_a_jobs_file_refuses_to_reload(client: Client, service: Orchestrator) -> None:
    answer = await client.post("/api/reload")
    assert answer.status == 409
    assert "no jobs file" in (await answer.json())["message"]
    assert (await (await client.get("/api/jobs")).json())["defaultJob"] == "snapshot"


def hangup_handled(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop handles SIGHUP (asyncio's own table: it has no public getter). Checked before each signal
    sent: unhandled, SIGHUP would end the test run."""
    return signal.SIGHUP in getattr(loop, "_signal_handlers", {})


async def test_sighup_reads_the_jobs_file_again(
    started: Client, jobs_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, str(started.make_url("/api/events")))
        jobs_path.write_text("[jobs.main\n")  # broken first: logged, nothing changes, the service lives on
        refused = asyncio.Event()
        handler = _Until(lambda message: "SIGHUP: jobs file not read again" in message, refused)
        logging.getLogger("orchestrator.http.reload").addHandler(handler)
        try:
            assert hangup_handled(asyncio.get_running_loop())
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(refused.wait(), WAIT)
        finally:
            logging.getLogger("orchestrator.http.reload").removeHandler(handler)
        assert await job_names(started) == JOBS
        jobs_path.write_text(JOBS_FILE + '\n[jobs.extra]\ncommand = "true"\n')
        assert hangup_handled(asyncio.get_running_loop())
        os.kill(os.getpid(), signal.SIGHUP)
        await next_status(stream, lambda doc: doc["job"] == "extra", WAIT)
    assert await job_names(started) == [*JOBS, "extra"]
    assert any(r.getMessage() == "jobs file read again: added extra; 3 unchanged" for r in caplog.records)


class _Until(logging.Handler):
    """Sets ``event`` when a record whose message ``matches`` is logged."""

    def __init__(self, matches: Callable[[str], bool], event: asyncio.Event) -> None:
        super().__init__()
        self.matches = matches
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if self.matches(record.getMessage()):
            self.event.set()


async def test_the_sighup_handler_is_put_back_when_the_app_stops(
    tmp_path: Path, clock: FakeClock, job: ScriptedJob
) -> None:
    loop = asyncio.get_running_loop()
    heard = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, heard.set)
    try:
        service, _ = several_jobs(tmp_path, clock, job)
        server = TestServer(create_app(service))
        await server.start_server()
        assert getattr(loop, "_signal_handlers")[signal.SIGHUP]._callback != heard.set  # noqa: B009
        await server.close()
        assert getattr(loop, "_signal_handlers")[signal.SIGHUP]._callback == heard.set  # noqa: B009
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert not hangup_handled(loop)


JOBS_OF_PROCESS = """
default-job = "main"

[jobs.main]
command = "true"
interval = 600

[jobs.report]
command = "true"
"""


@pytest.mark.process
async def test_a_real_service_runs_each_job_on_its_paths_and_reloads_on_sighup(
    tmp_path: Path, service_factory: Any
) -> None:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS_OF_PROCESS)
    service: ServiceProcess = service_factory("--jobs", str(jobs))
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/events")
        status, body = await asyncio.to_thread(service.post_json, "/api/jobs/report/trigger", {"reason": "by hand"})
        assert (status, body["message"]) == (202, "Job report triggered")
        done = await next_status(stream, lambda doc: doc["job"] == "report" and doc["lastRun"] is not None)
    run_id = done["lastRun"]["runId"]
    assert (done["lastRun"]["status"], done["lastRun"]["reason"]) == ("completed", "by hand")
    runs = (await asyncio.to_thread(service.get_json, "/api/jobs/report/runs"))["runs"]
    assert [(run["runId"], run["job"]) for run in runs] == [(run_id, "report")]
    every = (await asyncio.to_thread(service.get_json, "/api/runs"))["runs"]
    assert {run["job"] for run in every} == {"main", "report"}  # the default job's start-up run too
    assert await get_status(service, f"/api/jobs/report/runs/{run_id}/log") == 200
    assert await get_status(service, f"/api/snapshot/runs/{run_id}/log") == 404

    jobs.write_text(JOBS_OF_PROCESS + '\n[jobs.extra]\ncommand = "true"\n')
    service.proc.send_signal(signal.SIGHUP)
    await asyncio.to_thread(service.wait_for_log, "jobs file read again: added extra; 2 unchanged")
    listed = await asyncio.to_thread(service.get_json, "/api/jobs")
    assert [doc["job"] for doc in listed["jobs"]] == ["main", "report", "extra"]
    assert service.proc.poll() is None, service.logs()


async def get_status(service: ServiceProcess, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(service.url + path) as response:
        return response.status
