"""``GET /api/events``, every job's status in one stream, with a real SSE client over real HTTP: one event per job
on connect, then each change of any job; jobs a reload adds, changes or removes; one stream as the limits count
it; the stream ends at shutdown. And each job's own stream, ``/api/jobs/{job}/events``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from orchestrator.core.clock import FakeClock
from orchestrator.http.app import create_app
from orchestrator.http.streamclient import WRITE_BUFFER_CAP
from orchestrator.service import Orchestrator
from tests.fakes import Client, ScriptedJob, end_startup
from tests.http.conftest import JOBS, JOBS_FILE, several_jobs
from tests.support import SSEEvent, next_status, sse_stream

pytestmark = pytest.mark.service(sse_ping_seconds=0.2)

WAIT = 10.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def started(jobs_client: Client, jobs_service: Orchestrator, job: ScriptedJob) -> Client:
    await end_startup(jobs_service, job)
    return jobs_client


def all_events(client: Client, session: aiohttp.ClientSession) -> AsyncIterator[SSEEvent]:
    return sse_stream(session, str(client.make_url("/api/events")))


async def first_events(stream: AsyncIterator[SSEEvent], count: int) -> list[SSEEvent]:
    async with asyncio.timeout(WAIT):
        return [await anext(stream) for _ in range(count)]


async def test_one_event_per_job_on_connect_then_each_change_of_any_job(
    started: Client, session: aiohttp.ClientSession, job: ScriptedJob
) -> None:
    stream = all_events(started, session)
    first = await first_events(stream, len(JOBS))
    assert [event.event for event in first] == ["status"] * len(JOBS)
    assert [event.json()["job"] for event in first] == JOBS
    for event in first:
        name = event.json()["job"]
        assert event.json() == await (await started.get(f"/api/jobs/{name}/status")).json()
        assert event.id is not None and event.id.startswith(f"{name}:")

    await started.post("/api/jobs/report/pause", json={"reason": "quiet"})
    paused = await next_status(stream, lambda doc: doc["job"] == "report" and doc["paused"] is not None, WAIT)
    assert paused["paused"]["reason"] == "quiet"
    await started.post("/api/snapshot/trigger")
    run = await job.next_start()
    assert (await next_status(stream, lambda doc: doc["running"], WAIT))["job"] == "main"
    run.finish()
    assert (await next_status(stream, lambda doc: doc["lastRun"]["runId"] == run.ctx.run_id, WAIT))["job"] == "main"


async def test_the_all_jobs_stream_counts_as_one_event_stream(started: Client, session: aiohttp.ClientSession) -> None:
    stream = all_events(started, session)  # held: a stream dropped here may close before /health answers
    await first_events(stream, len(JOBS))
    health = await (await started.get("/health")).json()
    assert health["sseClients"] == 1
    await stream.aclose()


async def test_a_jobs_own_stream_is_that_jobs(started: Client, session: aiohttp.ClientSession) -> None:
    stream = sse_stream(session, str(started.make_url("/api/jobs/report/events")))
    first = await anext(stream)
    assert first.json()["job"] == "report" and first.id is not None and first.id.isdigit()
    await started.post("/api/snapshot/pause")
    await started.post("/api/jobs/report/pause")
    assert (await next_status(stream, lambda doc: doc["paused"] is not None, WAIT))["job"] == "report"


async def test_a_job_added_by_a_reload_comes_on_the_stream(
    started: Client, session: aiohttp.ClientSession, jobs_path: Path, jobs_service: Orchestrator
) -> None:
    stream = all_events(started, session)
    await first_events(stream, len(JOBS))
    jobs_path.write_text(JOBS_FILE + '\n[jobs.extra]\ncommand = "true"\n')
    answer = await started.post("/api/reload")
    assert answer.status == 200
    assert await answer.json() == {
        "success": True,
        "reloaded": True,
        "summary": "added extra; 3 unchanged",
        "added": ["extra"],
        "removed": [],
        "changed": [],
    }
    added = await next_status(stream, lambda doc: doc["job"] == "extra", WAIT)
    assert added["schedule"] == {"kind": "manual"}
    assert [doc["job"] for doc in (await (await started.get("/api/jobs")).json())["jobs"]] == [*JOBS, "extra"]
    await started.post("/api/jobs/extra/pause")  # and its changes follow
    assert (await next_status(stream, lambda doc: doc["paused"] is not None, WAIT))["job"] == "extra"


async def test_a_job_changed_by_a_reload_is_followed_in_its_new_form(
    started: Client, session: aiohttp.ClientSession, jobs_path: Path, jobs_service: Orchestrator
) -> None:
    stream = all_events(started, session)
    await first_events(stream, len(JOBS))
    jobs_path.write_text(JOBS_FILE.replace("0 3 * * *", "0 4 * * *"))
    assert (await (await started.post("/api/reload")).json())["changed"] == ["nightly"]
    # The new unit's document (the old unit was idle: it is replaced at once, and its stream entry follows).
    await next_status(
        stream, lambda doc: doc["job"] == "nightly" and doc["schedule"]["expression"] == "0 4 * * *", WAIT
    )
    await started.post("/api/jobs/nightly/pause")
    assert (await next_status(stream, lambda doc: doc["paused"] is not None, WAIT))["job"] == "nightly"


async def test_a_job_removed_by_a_reload_leaves_the_stream(
    started: Client, session: aiohttp.ClientSession, jobs_path: Path, jobs_service: Orchestrator
) -> None:
    stream = all_events(started, session)
    await first_events(stream, len(JOBS))
    jobs_path.write_text(JOBS_FILE.replace('[jobs.report]\ncommand = "true"\n', ""))
    assert (await (await started.post("/api/reload")).json())["removed"] == ["report"]
    await jobs_service.table.settled()
    assert [doc["job"] for doc in (await (await started.get("/api/jobs")).json())["jobs"]] == ["main", "nightly"]
    assert (await started.get("/api/jobs/report/status")).status == 404
    await started.post("/api/jobs/nightly/pause")  # the stream goes on with the others
    assert (await next_status(stream, lambda doc: doc["paused"] is not None, WAIT))["job"] == "nightly"


async def test_shutdown_ends_the_all_jobs_stream(tmp_path: Path, clock: FakeClock, job: ScriptedJob) -> None:
    service, _ = several_jobs(tmp_path, clock, job)
    server = TestServer(create_app(service))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, str(server.make_url("/api/events")))
        await first_events(stream, len(JOBS))
        await asyncio.wait_for(server.close(), WAIT)
        with pytest.raises((StopAsyncIteration, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
            async with asyncio.timeout(WAIT):
                async for _ in stream:
                    pass
                raise StopAsyncIteration


TOKEN = "all-events-token"


@pytest.mark.service(token=TOKEN, token_for_reads=True)
async def test_stream_tickets_open_any_jobs_stream_and_the_all_jobs_one(
    started: Client, session: aiohttp.ClientSession
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path, expected in (("/api/jobs/report/events", ["report"]), ("/api/events", JOBS)):
        assert (await session.get(str(started.make_url(path)))).status == 401, path
        ticket: dict[str, Any] = await (
            await session.post(str(started.make_url("/api/stream-ticket")), headers=bearer)
        ).json()
        url = str(started.make_url(f"{path}?ticket={ticket['ticket']}"))
        events = await first_events(sse_stream(session, url), len(expected))
        assert [event.json()["job"] for event in events] == expected
        spent = await session.get(url)
        assert spent.status == 401 and "already used" in (await spent.json())["message"]


async def test_without_a_jobs_file_the_all_jobs_stream_is_the_one_jobs(
    client: Client, service: Orchestrator, session: aiohttp.ClientSession
) -> None:
    stream = all_events(client, session)
    first = await anext(stream)
    assert first.json()["job"] == "snapshot" and first.id is not None and first.id.startswith("snapshot:")


async def test_every_stream_shares_one_follower_per_job(started: Client, session: aiohttp.ClientSession) -> None:
    streams = [all_events(started, session) for _ in range(3)]
    for stream in streams:
        await first_events(stream, len(JOBS))
    followers = [task for task in asyncio.all_tasks() if task.get_name().startswith("all-jobs stream: ")]
    assert sorted(task.get_name() for task in followers) == [f"all-jobs stream: {name}" for name in JOBS]


async def test_a_hundred_jobs_come_on_one_stream(
    tmp_path: Path, clock: FakeClock, job: ScriptedJob, session: aiohttp.ClientSession
) -> None:
    """A document per job on connect is far more than the write buffer cap: sent at the client's pace, not
    dropped for it."""
    names = [f"job-{n:03d}" for n in range(100)]
    text = "".join(f'[jobs.{name}]\ncommand = "true"\n' for name in names)
    service, _ = several_jobs(tmp_path, clock, job, text)
    server = TestServer(create_app(service))
    await server.start_server()
    try:
        events = await first_events(sse_stream(session, str(server.make_url("/api/events"))), len(names))
        assert [event.json()["job"] for event in events] == names
        assert sum(len(event.data) for event in events) > WRITE_BUFFER_CAP
    finally:
        await server.close()
