"""The HTTP API and the SSE stream over real HTTP (aiohttp's test server on a real socket), with the job
scripted and the clock fake so every state is reached on purpose."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source
from orchestrator.http import sse
from orchestrator.http.app import create_app
from orchestrator.service import Orchestrator
from tests.fakes import Client, ScriptedJob, assert_idle, end_startup, ended, minutes, published, settle
from tests.support import next_status, sse_stream

pytestmark = pytest.mark.service(sse_ping_seconds=0.2)


@pytest.fixture
async def idle(client: Client, job: ScriptedJob, clock: FakeClock, service: Orchestrator) -> Client:
    """The service after its start-up run has ended, a minute ago."""
    await end_startup(service, job)
    clock.advance(minutes(1))
    await settle()
    return client


async def test_status_has_the_original_fields_with_their_types(idle: Client) -> None:
    response = await idle.get("/api/snapshot/status")
    assert response.status == 200
    doc = await response.json()
    assert list(doc)[:6] == ["running", "lastRunAt", "nextRunAt", "intervalMinutes", "minutesUntilNextRun", "progress"]
    assert doc["running"] is False
    assert doc["lastRunAt"] == "2026-01-20T10:00:00.000Z"
    assert doc["nextRunAt"] == "2026-01-20T10:30:00.000Z"
    assert doc["intervalMinutes"] == 30
    assert doc["minutesUntilNextRun"] == 29
    assert doc["progress"] == {
        "status": "completed",
        "step": "Completed",
        "progress": 100,
        "detail": None,
        "done": None,
        "total": None,
        "stepStartedAt": None,
    }
    assert doc["lastRun"]["status"] == "completed" and doc["lastRun"]["trigger"] == "startup"
    assert doc["queued"] is False


def test_last_run_at_is_null_before_any_run(unstarted_service: Orchestrator) -> None:
    doc = unstarted_service.status()
    assert doc["lastRunAt"] is None
    assert doc["lastRun"] is None
    assert doc["nextRunAt"] == "2026-01-20T10:00:00.000Z"
    assert doc["minutesUntilNextRun"] == 0


async def test_trigger_runs_with_reason(idle: Client, job: ScriptedJob) -> None:
    response = await idle.post("/api/snapshot/trigger", json={"reason": "new data"})
    assert response.status == 202
    body = await response.json()
    assert body["success"] is True and body["message"]
    run = await job.next_start()
    assert (run.ctx.source, run.ctx.reason) == (Source.HTTP, "new data")


async def test_trigger_without_body(idle: Client, job: ScriptedJob) -> None:
    response = await idle.post("/api/snapshot/trigger")
    assert response.status == 202
    assert (await job.next_start()).ctx.reason == ""


async def test_trigger_while_running_says_queued(client: Client, job: ScriptedJob) -> None:
    await job.next_start()
    body = await (await client.post("/api/snapshot/trigger")).json()
    assert body["queued"] is True
    assert "queued" in body["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "must be JSON"),
        (b"[1]", "JSON object"),
        (b'{"reason": 5}', "reason must be a string"),
        # Each of these escaped the body parser as a 500 with a traceback (RecursionError, ValueError).
        (b"[" * 8000, "must be JSON"),
        (b"1" * 5000, "must be JSON"),
        (b'{"reason": "x", "n": ' + b"9" * 5000 + b"}", "must be JSON"),
    ],
    ids=["not-json", "not-an-object", "reason-not-a-string", "nested-8000-deep", "5000-digits", "5000-digit-field"],
)
async def test_bad_trigger_bodies_get_400_and_start_nothing(
    idle: Client, service: Orchestrator, job: ScriptedJob, body: bytes, message: str
) -> None:
    response = await idle.post("/api/snapshot/trigger", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    doc = await response.json()
    assert doc["success"] is False and message in doc["message"]
    await settle()
    assert_idle(service)
    assert job.started.empty()


async def test_progress_and_health(client: Client, job: ScriptedJob, service: Orchestrator) -> None:
    run = await job.next_start()
    # The runner's own "running" counts as the file's from the moment it is written, before its events come:
    # else a report read from memory meanwhile is shown, then the older file, and the bar would go back.
    latest = service.unit.monitor.latest
    assert latest is not None and latest.run_id == run.ctx.run_id, latest
    run.report(45, "Fetching GitHub PRs... (5/15 repos)")
    # The report travels the real path: runner -> progress file -> inotify -> monitor -> hub.
    await published(service, lambda d: d["progress"]["progress"] == 45)
    doc = await (await client.get("/api/snapshot/progress")).json()
    assert doc["status"] == "running"
    assert doc["step"] == "Fetching GitHub PRs... (5/15 repos)"
    assert doc["progress"] == 45
    assert doc["startedAt"] == "2026-01-20T10:00:00.000Z"
    health = await client.get("/health")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"


async def test_page_is_served(client: Client) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert "text/html" in response.headers["Content-Type"]
    assert "new EventSource" in (await (await client.get("/lib/connection.js")).text())
    assert "<snapshot-bar" in (await response.text())
    linked = re.findall(r'(?:src|href)="(/[^"]+)"', await response.text())
    assert any(path.endswith(".js") for path in linked), linked
    for path in linked:  # the page's scripts and styles, as it names them
        answer = await client.get(path)
        assert answer.status == 200, path
        if path.endswith(".js"):
            assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8", path


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/%2e%2e/pyproject.toml", "/nope.js"])
async def test_static_never_leaves_web(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404


# ------------------------------------------------------------------------------------------------- SSE
@pytest.fixture
async def events(client: Client) -> AsyncIterator[Callable[..., AsyncIterator[Any]]]:
    session = aiohttp.ClientSession()

    def open_stream(
        headers: dict[str, str] | None = None, on_comment: Callable[[str], None] | None = None
    ) -> AsyncIterator[Any]:
        return sse_stream(session, str(client.make_url("/api/snapshot/events")), headers, on_comment)

    yield open_stream
    await session.close()


async def test_stream_starts_with_current_status(
    idle: Client, events: Callable[..., AsyncIterator[Any]], clock: FakeClock
) -> None:
    clock.advance(minutes(10))  # long after the last change: the clock fields must still be fresh
    stream = events()
    first = await anext(stream)
    assert first.event == "status" and first.id
    current = await (await idle.get("/api/snapshot/status")).json()
    assert first.json() == current
    assert current["minutesUntilNextRun"] == 19


async def test_stream_pushes_every_change(
    client: Client, job: ScriptedJob, events: Callable[..., AsyncIterator[Any]]
) -> None:
    run = await job.next_start()
    stream = events()
    await next_status(stream, lambda d: d["running"])
    run.report(30, "thirty")
    doc = await next_status(stream, lambda d: d["progress"]["step"] == "thirty", timeout=5)
    assert doc["progress"]["progress"] == 30
    run.finish()
    doc = await next_status(stream, lambda d: not d["running"], timeout=5)
    assert doc["lastRun"]["status"] == "completed"


async def test_resume_with_latest_id_sends_nothing_until_a_change(
    idle: Client, service: Orchestrator, events: Callable[..., AsyncIterator[Any]]
) -> None:
    first = await anext(events())
    resumed = events({"Last-Event-ID": first.id})
    pending = asyncio.ensure_future(anext(resumed))
    await settle()
    assert not pending.done(), "an up-to-date client gets no repeat"
    await service.request_run(Source.HTTP, "after resume")
    event = await asyncio.wait_for(pending, 5)
    assert int(event.id) > int(first.id)
    assert event.json()["running"] or event.json()["queued"]


async def test_stale_id_gets_the_current_state_at_once(idle: Client, events: Callable[..., AsyncIterator[Any]]) -> None:
    event = await asyncio.wait_for(anext(events({"Last-Event-ID": "12"})), 5)
    assert event.event == "status"


async def test_heartbeat_comments_keep_idle_streams_alive(
    idle: Client, events: Callable[..., AsyncIterator[Any]]
) -> None:
    comments: list[str] = []
    pinged = asyncio.Event()

    def on_comment(line: str) -> None:
        comments.append(line)
        pinged.set()

    stream = events(on_comment=on_comment)
    await anext(stream)
    reader = asyncio.ensure_future(anext(stream))  # keeps reading; nothing changes, so only pings arrive
    try:
        await asyncio.wait_for(pinged.wait(), 5)
    finally:
        reader.cancel()
    assert comments[0].startswith(": ping")
    assert not reader.done() or reader.cancelled(), "no status event without a change"


@pytest.mark.service()  # the default heartbeat
async def test_shutdown_does_not_hang_on_open_streams(unstarted_service: Orchestrator) -> None:
    server = TestServer(create_app(unstarted_service))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        streams = [sse_stream(session, str(server.make_url("/api/snapshot/events"))) for _ in range(5)]
        for stream in streams:
            await anext(stream)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.close(), 10)
        assert loop.time() - started < 5
        for stream in streams:
            with pytest.raises((StopAsyncIteration, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
                async with asyncio.timeout(5):  # events sent before the close may come first, then the end
                    async for _ in stream:
                        pass
                    raise StopAsyncIteration


# ------------------------------------------------------------------------------- a status that stays small
async def test_a_run_of_many_long_triggers_keeps_the_status_document_small(
    idle: Client, job: ScriptedJob, service: Orchestrator
) -> None:
    """The status goes to every open stream on every change: a flood of long reasons must not grow it. The
    run record keeps what the status leaves out."""
    await idle.post("/api/snapshot/trigger", json={"reason": "first"})
    first = await job.next_start()
    for i in range(150):  # coalesced into the next run: 100 named (500 characters each), 50 only counted
        await service.request_run(Source.HTTP, f"{i:03d} " + "x" * 600)
    first.finish()
    await ended(service, first)
    second = await job.next_start()

    response = await idle.get("/api/snapshot/status")
    body = await response.read()
    assert len(body) < 6 * 1024, len(body)
    current = (await response.json())["currentRun"]
    assert current["triggerCount"] == 150
    assert [t["reason"][:3] for t in current["triggers"]] == ["000", "001", "002"]
    assert current["reason"].startswith("000 xxx") and current["reason"].endswith("; and 97 more")
    assert current["reason"].count("; ") == 3

    second.finish(RunStatus.ERROR, exit_code=1, error="boom\n" + "y" * 20_000)
    await ended(service, second)
    response = await idle.get("/api/snapshot/status")
    assert len(await response.read()) < 8 * 1024
    last = (await response.json())["lastRun"]
    assert len(last["triggers"]) == 3 and last["reason"].endswith("; and 97 more")
    assert last["error"].startswith("boom\nyyy") and last["error"].endswith("more characters in the run record]")

    record = await (await idle.get(f"/api/snapshot/runs/{second.ctx.run_id}")).json()
    assert record["triggerCount"] == 150 and len(record["triggers"]) == 100
    assert record["reason"].count("; ") == 99 and "and 97 more" not in record["reason"]
    assert record["error"] == "boom\n" + "y" * 20_000


async def test_a_change_is_encoded_once_for_every_stream(
    idle: Client, job: ScriptedJob, events: Callable[..., AsyncIterator[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = [events() for _ in range(20)]
    for stream in streams:
        await anext(stream)
    encoded: list[object] = []
    dumps = json.dumps

    def counting(obj: object, *args: Any, **kwargs: Any) -> str:
        if isinstance(obj, dict) and "serverTime" in obj and "running" in obj:
            encoded.append(obj)
        return dumps(obj, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", counting)
    await idle.post("/api/snapshot/trigger", json={"reason": "once"})
    run = await job.next_start()
    seen: set[str] = set()
    for stream in streams:
        async with asyncio.timeout(10):
            async for event in stream:
                seen.add(event.id)
                if event.event == "status" and event.json()["running"]:
                    break
    # Each version sent is encoded once, whichever of the 20 streams sent it (it was 20 times before).
    assert 1 <= len(encoded) <= len(seen), (len(encoded), len(seen))
    run.finish()


# ------------------------------------------------------------------------------- what the app leaves behind
async def test_cleanup_puts_back_the_loops_exception_and_signal_handlers(unstarted_service: Orchestrator) -> None:
    loop = asyncio.get_running_loop()

    def before(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        loop.default_exception_handler(context)

    interrupted = asyncio.Event()
    loop.set_exception_handler(before)
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        server = TestServer(create_app(unstarted_service))
        await server.start_server()
        assert loop.get_exception_handler() is not before  # the quiet accept-error handler, while it serves
        await server.close()  # shutdown replaces the stop signals' handlers; cleanup puts them back
        assert loop.get_exception_handler() is before
        handlers = getattr(loop, "_signal_handlers", {})  # asyncio's own table: it has no public getter
        assert signal.SIGTERM not in handlers
        assert getattr(handlers[signal.SIGINT], "_callback") == interrupted.set  # noqa: B009
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.set_exception_handler(None)


async def test_a_head_of_the_event_stream_is_refused_and_holds_no_seat(idle: Client) -> None:
    for _ in range(3):
        response = await idle.head("/api/snapshot/events")
        assert response.status == 405
    assert idle.app is not None
    assert sse.open_streams(idle.app) == 0
