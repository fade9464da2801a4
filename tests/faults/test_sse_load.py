"""Fault: event stream clients under load. A client that stops reading must be dropped once its buffer is
full, without slowing anyone else; clients that connect and vanish abruptly, by the thousand, must leave the
service's memory and file descriptors where they were.

The slow-client tests run the real app in-process (aiohttp's test server on a real socket) so the test can
look at the server's side of each connection; the thousand-client test runs ``python -m orchestrator serve``
as a real process and reads its ``/proc/<pid>`` before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.core.clock import FakeClock
from orchestrator.http.app import create_app
from orchestrator.http.sse import clients, open_streams
from orchestrator.http.streamclient import WRITE_BUFFER_CAP, Client
from orchestrator.service import Orchestrator
from tests.fakes import T0, ScriptedJob, Services
from tests.support import ServiceProcess, SSEEvent, descriptors, sse_stream

EVENTS_PATH = "/api/snapshot/events"
REQUEST = b"GET " + EVENTS_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
SLOW_RCVBUF = 4096
"""The non-reading client's receive buffer (the kernel doubles it): its window closes almost at once, so the
server's buffers, not the client's, fill up."""


# ------------------------------------------------------------------------------------------ helpers
async def connect_raw(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: it sets the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_until(sock: socket.socket, *markers: bytes, limit: int = 1 << 20) -> bytes:
    """Read from ``sock`` until each marker has been seen, in order (or the peer closes)."""
    loop = asyncio.get_running_loop()
    data = b""
    start = 0
    for marker in markers:
        while (found := data.find(marker, start)) < 0:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}; got {data[:200]!r}")
            data += chunk
            assert len(data) < limit
        start = found + len(marker)
    return data


def reset(sock: socket.socket) -> None:
    """Close abruptly: SO_LINGER 0 makes close() send RST instead of FIN, dropping unread data."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def next_at_least(events: AsyncIterator[SSEEvent], version: int, timeout: float) -> SSEEvent:
    """The first ``status`` event whose id (the hub's version) is ``version`` or newer."""
    async with asyncio.timeout(timeout):
        async for event in events:
            if event.event == "status" and event.id is not None and int(event.id) >= version:
                return event
    raise AssertionError("event stream ended")


def server_side(app: Any, sock: socket.socket) -> Client:
    host, port = sock.getsockname()
    [client] = [c for c in clients(app) if c.peer == f"{host}:{port}"]
    return client


@contextlib.asynccontextmanager
async def serving(services: Services, **settings: Any) -> AsyncIterator[tuple[Orchestrator, TestServer]]:
    """The whole app on a real socket, with a scripted job whose start-up run never ends (so the service
    itself publishes nothing while the test floods the hub)."""
    job = ScriptedJob()
    orchestrator = services.build(clock=FakeClock(T0), job=job, **settings)
    server = TestServer(create_app(orchestrator))
    await server.start_server()
    try:
        await job.next_start()
        yield orchestrator, server
    finally:
        await server.close()


# ------------------------------------------------------------------------------ a client stops reading
EVENT_PAD = 16 * 1024
"""Large-ish events (a real one is ~1-2 KiB) fill the kernel's buffers in a few hundred events."""


async def test_client_that_stops_reading_is_dropped_at_the_buffer_cap(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator.http")
    # A send timeout far beyond the test's bound: only the buffer cap can drop the client in time.
    async with serving(services, sse_send_timeout=60.0) as (orchestrator, server), aiohttp.ClientSession() as session:
        app, hub, loop = server.app, orchestrator.hub, asyncio.get_running_loop()
        assert app is not None
        reader = sse_stream(session, str(server.make_url(EVENTS_PATH)))
        await next_at_least(reader, 0, timeout=5)

        slow = await connect_raw(server.port or 0, rcvbuf=SLOW_RCVBUF)
        try:
            await loop.sock_sendall(slow, REQUEST)
            await read_until(slow, b" 200 ", b"event: status", b"\r\n\r\n")  # registered; from now on it never reads
            stalled = server_side(app, slow)

            started, most_buffered, sent = loop.time(), 0, 0
            while stalled in clients(app):
                assert sent < 5000, f"not dropped after {sent} events of {EVENT_PAD} bytes"
                hub.publish({"seq": sent, "pad": "x" * EVENT_PAD})
                sent += 1
                # The reading client gets every latest state promptly, whatever the stalled one does.
                await next_at_least(reader, hub.version, timeout=2)
                most_buffered = max(most_buffered, stalled.buffered())
            took = loop.time() - started

            event_bytes = EVENT_PAD + 200  # the event's fields and chunk framing around the padding
            assert most_buffered > WRITE_BUFFER_CAP - event_bytes, "the server's buffer never filled: wrong drop"
            assert most_buffered <= WRITE_BUFFER_CAP + event_bytes, f"{most_buffered} bytes buffered for one client"
            assert took < 15, f"dropped only after {took:.1f}s"
            drops = [r.getMessage() for r in caplog.records if "stopped reading" in r.getMessage()]
            assert len(drops) == 1, drops  # once per client, not once per event
            assert stalled.peer in drops[0]
            assert stalled.transport.is_closing()

            # The reading client carries on as before.
            hub.publish({"seq": "after"})
            assert (await next_at_least(reader, hub.version, timeout=2)).json() == {"seq": "after"}
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # e.g. an unretrieved task
        finally:
            reset(slow)


async def test_send_that_cannot_complete_in_time_drops_the_client(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    """Events too big for the cap's headroom make aiohttp wait for the client to drain; the send timeout ends
    that wait and the client is dropped, while the reading client keeps getting every state. (Without the
    timeout the client would stay: the cap is checked only between sends.)"""
    caplog.set_level(logging.INFO, logger="orchestrator.http")
    send_timeout = 0.5
    async with serving(services, sse_send_timeout=send_timeout) as (orchestrator, server):
        app, hub, loop = server.app, orchestrator.hub, asyncio.get_running_loop()
        assert app is not None
        async with aiohttp.ClientSession() as session:
            reader = sse_stream(session, str(server.make_url(EVENTS_PATH)))
            await next_at_least(reader, 0, timeout=5)
            slow = await connect_raw(server.port or 0, rcvbuf=SLOW_RCVBUF)
            try:
                await loop.sock_sendall(slow, REQUEST)
                await read_until(slow, b" 200 ", b"event: status", b"\r\n\r\n")
                stalled = server_side(app, slow)
                started, sent = loop.time(), 0
                while stalled in clients(app):
                    # Bounded by time, not by count: on a fast machine 500 events go out before the timeout.
                    assert loop.time() - started < send_timeout + 5, f"not dropped after {sent} events"
                    hub.publish({"seq": sent, "pad": "y" * (4 * WRITE_BUFFER_CAP)})
                    sent += 1
                    await next_at_least(reader, hub.version, timeout=2)
                took = loop.time() - started
            finally:
                reset(slow)
        assert took < send_timeout + 5
        drops = [r.getMessage() for r in caplog.records if stalled.peer in r.getMessage()]
        # aiohttp-sse also sets TCP_USER_TIMEOUT to the send timeout: the kernel may abort the connection (its
        # window closed that long) just before the send times out. That drop is silent; ours is one line.
        assert len(drops) <= 1 and all("could not be sent within 0.5 s" in drop for drop in drops), drops
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_ping_ends_the_stream_of_a_vanished_client_without_handler_cancellation(
    job: ScriptedJob, services: Services
) -> None:
    """``web.run_app`` does not cancel the handler of a lost connection unless told to. The stream must end
    anyway, found by its next ping, instead of waiting for the next change, which may be hours away."""
    app = create_app(services.build(sse_ping_seconds=0.05))
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.SockSite(runner, socket.create_server(("127.0.0.1", 0)))
    await site.start()
    try:
        await job.next_start()  # the start-up run never ends: nothing else is published
        port = runner.addresses[0][1]
        gone = await connect_raw(port)
        await asyncio.get_running_loop().sock_sendall(gone, REQUEST)
        await read_until(gone, b" 200 ", b"event: status", b"\r\n\r\n")
        assert open_streams(app) == 1
        reset(gone)
        await wait_until("the stream of the vanished client ended", lambda: open_streams(app) == 0, timeout=5)
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ a thousand clients vanish, repeatedly
CLIENTS = 1000
ROUNDS = 4
"""Rounds after the warm-up: 4,000 clients, 3,000 of them with a stream open at the server."""
CONNECTING_AT_ONCE = 100
"""Below the service's listen backlog (128): a full backlog drops SYNs, and the 1 s retransmit would make the
test slow, not the service leak."""
FD_SLACK = 5
"""A /health request in flight, a log file rotated by the job: a few fds come and go; a leak is hundreds."""
RSS_SLACK_KIB = 8 * 1024
"""After the warm-up round the interpreter's arenas and aiohttp's buffers already hold what a round needs and
reuse it: the four rounds grew RSS by 0.5-1.4 MiB here. Keeping each closed stream's objects alive (a leak
with no fd) grew it by ~5.4 MiB per round, 21 MiB in all; 8 MiB catches any leak above ~2.7 KiB per stream."""


@dataclasses.dataclass(frozen=True)
class Usage:
    rss_kib: int
    fds: int


def usage(pid: int) -> Usage:
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return Usage(rss_kib=rss, fds=len(list(Path(f"/proc/{pid}/fd").iterdir())))


async def churn(port: int, clients: int) -> int:
    """``clients`` raw clients connect and send the GET. Of every 8, one resets right after connecting, one
    right after its request (before the head); the rest read the response head and stay until all have,
    then all reset at once. Returns how many were open at once."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    held: list[socket.socket] = []

    async def one(i: int) -> None:
        async with gate:
            sock = await connect_raw(port)
            try:
                if i % 8 == 0:
                    reset(sock)
                    return
                await loop.sock_sendall(sock, REQUEST)
                if i % 8 == 1:
                    reset(sock)
                    return
                head = await asyncio.wait_for(read_until(sock, b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200 "), head[:100]
            except BaseException:
                reset(sock)
                raise
            held.append(sock)

    try:
        await asyncio.gather(*(one(i) for i in range(clients)))
        return len(held)
    finally:
        for sock in held:
            reset(sock)


def sse_clients(service: ServiceProcess) -> int:
    return int(service.get_json("/health")["sseClients"])


async def wait_until(what: str, check: Callable[[], Any], timeout: float = 10) -> Any:
    """Poll ``check()`` until it returns a truthy value, and return that. Polling, because nothing tells us
    when a server has noticed that its peers reset their connections (no event to wait on, in process or over
    HTTP): a short interval inside a bounded loop."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.02)
    return result


@pytest.fixture
def enough_fds() -> Iterator[None]:
    """The test holds 1,000 sockets and so does the service, which inherits this limit when it starts."""
    with descriptors(2 * CLIENTS + 500):
        yield


@pytest.mark.process
async def test_thousand_clients_vanishing_leave_memory_and_fds_where_they_were(
    enough_fds: None, service_factory: Any
) -> None:
    # Every client comes from 127.0.0.1: no per-client cap, as if each were another browser.
    service: ServiceProcess = service_factory(
        "--command", "true", "--interval", "100000", "--streams-per-client", "0", "--connections-per-client", "0"
    )
    pid = service.proc.pid
    await wait_until("start-up run ended", lambda: service.get_json("/api/snapshot/status")["lastRun"])

    async def one_round() -> Usage:
        held = await churn(service.port, CLIENTS)
        assert held == CLIENTS - CLIENTS // 4
        await wait_until("every stream closed", lambda: sse_clients(service) == 0)
        return usage(pid)

    before = await one_round()  # warm-up: the first 1,000 clients size the arenas and buffers
    curve = [before]
    for _ in range(ROUNDS):
        curve.append(await one_round())
    # The service may still be closing the last few reset sockets the moment sseClients reaches 0.
    after = await wait_until("fds back", lambda: (u := usage(pid)).fds <= before.fds + FD_SLACK and u)

    report = ", ".join(f"{u.rss_kib} KiB/{u.fds} fds" for u in curve)
    assert abs(after.fds - before.fds) <= FD_SLACK, report
    assert after.rss_kib - before.rss_kib < RSS_SLACK_KIB, report
    assert sse_clients(service) == 0
    logs = service.logs()
    for problem in ("Traceback", "Error handling request", "never retrieved", "dropped"):
        assert problem not in logs, logs[-3000:]
    # Still serving: a new client gets the current state.
    async with aiohttp.ClientSession() as session:
        assert (await next_at_least(sse_stream(session, service.url + EVENTS_PATH), 0, timeout=5)).json()


# --------------------------------------------------------------------------------- too many streams
async def test_streams_beyond_the_limit_get_503_until_one_closes(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    """Each stream holds a file descriptor, and the job needs some too: past ``sse_max_clients`` a client is
    told to come back later, once (one log line for the whole spell), and let in again when there is room."""
    async with serving(services, sse_max_clients=3) as (_, server), aiohttp.ClientSession() as session:
        url = str(server.make_url(EVENTS_PATH))
        open_ones = [sse_stream(session, url) for _ in range(3)]
        for stream in open_ones:
            await next_at_least(stream, 0, timeout=5)
        for _ in range(2):
            async with session.get(url) as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "10"
                body = await refused.json()
                assert body["success"] is False and "Too many open event streams (3)" in body["message"]
        assert sum("event streams open, the most allowed" in r.getMessage() for r in caplog.records) == 1

        await open_ones.pop().aclose()  # one client leaves
        assert server.app is not None
        await wait_until("the server noticed", lambda: open_streams(server.app) == 2)
        await next_at_least(sse_stream(session, url), 0, timeout=5)
