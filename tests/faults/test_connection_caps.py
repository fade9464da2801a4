"""Fault: one client exhausts the file descriptors with idle connections. A real service under a low
descriptor limit (``prlimit``), real sockets from several loopback addresses (127.0.0.2 and up are loopback on
Linux), each sending a request head without its final blank line, as an attacker did.

Before: only streams were capped. 1,100 such connections under ``ulimit -n 1024`` (150 under 100) took every
descriptor: ``/health`` did not answer anyone, a triggered run failed ``cannot start job: [Errno 24] Too many
open files``, and the history, state, progress and log writes failed. Now one address may hold only its share
and the connections in all stay below the limit, so everyone else gets in and the job still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.http.connlimits import derived_total, limits_for
from orchestrator.store.history import HISTORY_FILE_NAME, read_recent
from tests.faults.harness import LogFollower
from tests.faults.test_sse_load import reset
from tests.support import ServiceProcess, next_status, sse_stream, start_service

pytestmark = [pytest.mark.process, pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")]

DESCRIPTORS = 256
LIMITS = limits_for(256, derived_total(DESCRIPTORS))
"""What the service allows under ``prlimit --nofile=256`` with its defaults: 192 in all, 96 per address."""
PARTIAL_HEAD = b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
"""A request head without its final blank line: aiohttp waits for the rest."""
ATTACKER = "127.0.0.3"
OTHER = "127.0.0.2"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = start_service(
        tmp_path, "--command", "true", "--interval", "100000", prefix=("prlimit", f"--nofile={DESCRIPTORS}")
    )
    try:
        service.wait_ready()
        service.wait_for_log("completed in")  # the start-up run: nothing else runs until the test asks
        yield service
    finally:
        assert service.stop() == 0


async def partial_connection(port: int, source: str) -> socket.socket | None:
    """A connection from ``source`` that sends a partial request head; ``None`` if it could not connect (the
    service's backlog full because it no longer accepts)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 3)
        await loop.sock_sendall(sock, PARTIAL_HEAD)
    except (TimeoutError, ConnectionError):
        reset(sock)
        return None
    return sock


async def until_closed(sock: socket.socket) -> None:
    """Returns when the service closes ``sock`` (it sends nothing to a partial head)."""
    with contextlib.suppress(ConnectionError):
        while await asyncio.get_running_loop().sock_recv(sock, 4096):
            pass


@contextlib.asynccontextmanager
async def flood(port: int, source: str, count: int) -> AsyncIterator[list[socket.socket]]:
    """``count`` partial connections from ``source`` (100 connecting at a time, under the listen backlog);
    those that connected, all reset at the end."""
    gate = asyncio.Semaphore(100)

    async def one() -> socket.socket | None:
        async with gate:
            return await partial_connection(port, source)

    socks = [s for s in await asyncio.gather(*(one() for _ in range(count))) if s is not None]
    try:
        yield socks
    finally:
        for sock in socks:
            reset(sock)


async def closed_at_once(socks: list[socket.socket], expected: int, timeout: float = 10) -> int:
    """Wait (bounded: well within the 15 s after which aiohttp closes a head that never completes) until
    ``expected`` of ``socks`` are closed by the service; how many are."""
    watchers = [asyncio.create_task(until_closed(sock)) for sock in socks]
    try:
        async with asyncio.timeout(timeout):
            while sum(w.done() for w in watchers) < expected:
                await asyncio.wait([w for w in watchers if not w.done()], return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        pass
    finally:
        for watcher in watchers:
            watcher.cancel()
    return sum(w.done() and not w.cancelled() for w in watchers)


def ended(log: str) -> bool:
    return "completed in" in log or " ended " in log


def session_from(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(source, 0)), timeout=aiohttp.ClientTimeout(total=10)
    )


async def test_one_address_holding_partial_connections_leaves_others_and_the_job_their_share(
    service: ServiceProcess,
) -> None:
    # Before: the 400 connections took every descriptor the service had; /health from another address got no
    # answer, and a triggered run could not get the job's pipes nor write its history.
    attempts = 400
    async with flood(service.port, ATTACKER, attempts) as held:
        async with session_from(OTHER) as session:
            async with session.get(service.url + "/health") as health:
                assert health.status == 200 and (await health.json())["status"] == "ok"
            events = sse_stream(session, service.url + "/api/snapshot/events")
            await next_status(events, lambda d: not d["running"])
            async with session.post(service.url + "/api/snapshot/trigger", json={"reason": "under attack"}) as r:
                assert r.status == 202, await r.text()
            done = await next_status(events, lambda d: (d["lastRun"] or {}).get("reason") == "under attack")
            async with session.get(service.url + "/api/snapshot/runs?limit=1") as answer:
                [run] = (await answer.json())["runs"]
        assert done["lastRun"]["status"] == "completed", done["lastRun"]
        assert (run["runId"], run["status"]) == (done["lastRun"]["runId"], "completed")

        assert len(held) == attempts, "every connection is accepted (and the ones over the cap closed)"
        closed = await closed_at_once(held, attempts - LIMITS.per_client)
        assert closed == attempts - LIMITS.per_client, f"{closed} of {attempts} closed; cap {LIMITS.per_client}"

    logs = service.logs()
    assert logs.count(f"client {ATTACKER} holds {LIMITS.per_client} connections") == 1, logs[-3000:]
    for problem in ("Too many open files", "cannot record run", "cannot accept connections", "Traceback"):
        assert problem not in logs, logs[-3000:]


async def test_connections_from_many_addresses_stop_below_the_descriptor_limit(service: ServiceProcess) -> None:
    # Before: spread over addresses (or before any cap by address), the connections took every descriptor, and
    # a run failed with "cannot start job: [Errno 24] Too many open files", unrecorded in the history.
    follower = LogFollower(service)
    try:
        since = follower.mark()
        async with contextlib.AsyncExitStack() as stack:
            held: list[socket.socket] = []
            for n in range(2):  # two addresses, each at its cap: the total is full
                held += await stack.enter_async_context(flood(service.port, f"127.0.0.{10 + n}", LIMITS.per_client))
            more = await stack.enter_async_context(flood(service.port, "127.0.0.12", 50))
            (service.triggers_dir / "run-now").write_text("a file trigger gets in where HTTP cannot")
            await follower.until(lambda: "(file)" in follower.text(since) and ended(follower.text(since)), "run end")

            assert len(held) == LIMITS.total
            assert await closed_at_once(more, len(more)) == len(more) == 50, "the total is reached"
        runs: list[dict[str, Any]] = read_recent(service.data_dir / HISTORY_FILE_NAME, 1)
        assert runs[0]["status"] == "completed" and runs[0]["trigger"] == "file", runs
    finally:
        follower.close()
    logs = service.logs()
    assert logs.count(f"{LIMITS.total} connections open, the most allowed") == 1, logs[-3000:]
    for problem in ("Too many open files", "cannot record run", "unable to open database file", "Traceback"):
        assert problem not in logs, logs[-3000:]
