"""Fault: one client tries to take every stream. Over real sockets to the real app (aiohttp's test server),
clients at different source addresses (127.0.0.2 and up are loopback on Linux), and once against a real
service process with its defaults and 2,000 streams, as a script did: before, that locked every browser out
(503, "unreachable") for as long as the script held them.

- One client address gets ``429`` beyond its cap; another address still gets its stream.
- Event streams and log streams are counted apart: a crowd on one never shuts out the other.
- With a token, a share of the streams is kept for requests that carry it; the larger half of that share for
  the bearer header alone. Streams opened with the read cookie are capped per address like anonymous ones.
- ``X-Forwarded-For`` names the client only when the peer is a ``--trusted-proxy``; otherwise it is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from orchestrator.cli.values import parse_trusted_proxies
from orchestrator.core.clock import FakeClock
from orchestrator.http.sse import clients, open_streams
from orchestrator.http.streamlimits import StreamKind
from orchestrator.service import Orchestrator
from tests.fakes import Services
from tests.faults.test_sse_load import EVENTS_PATH, read_until, reset, serving, wait_until
from tests.support import ServiceProcess, descriptors

TOKEN = "s3cret-Token+/=xyz"
OTHER = "127.0.0.2"
THIRD = "127.0.0.3"


@dataclasses.dataclass
class Answer:
    """The answer to one stream request: its status, head and (for a refusal) JSON body; an open stream keeps
    its socket until :meth:`close`."""

    status: int
    head: str
    body: dict[str, Any]
    sock: socket.socket | None
    received: bytes = b""
    """What came after the head (an open stream's first event may come in the same read)."""

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def close(self) -> None:
        if self.sock is not None:
            reset(self.sock)
            self.sock = None


@contextlib.asynccontextmanager
async def streams() -> AsyncIterator[list[Answer]]:
    """A list to put answers in; every stream still open in it is closed at the end."""
    answers: list[Answer] = []
    try:
        yield answers
    finally:
        for answer in answers:
            answer.close()


async def ask(port: int, path: str, *, source: str = "127.0.0.1", headers: Mapping[str, str] | None = None) -> Answer:
    """``GET path`` from ``source`` over a raw socket: an open stream (200) stays open, anything else is read
    to its end and closed."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{extra}\r\n"
        await loop.sock_sendall(sock, request.encode())
        data = await asyncio.wait_for(read_until(sock, b"\r\n\r\n"), 10)
    except BaseException:
        reset(sock)
        raise
    head, _, rest = data.partition(b"\r\n\r\n")
    answer = Answer(int(head.split()[1]), head.decode(), {}, sock, rest)
    if answer.status == 200:
        return answer
    length = int(answer.header("Content-Length") or 0)
    try:
        async with asyncio.timeout(10):
            while len(rest) < length:
                chunk = await loop.sock_recv(sock, 65536)
                assert chunk, f"closed before the body's end: {rest!r}"
                rest += chunk
    finally:
        answer.close()
    answer.body = json.loads(rest) if length else {}
    return answer


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def run_id(orchestrator: Orchestrator) -> str:
    current = orchestrator.status()["currentRun"]
    assert current is not None, "the start-up run is going on"
    return str(current["runId"])


# ---------------------------------------------------------------------------------------- one address
async def test_one_client_gets_429_beyond_its_cap_and_another_still_gets_its_stream(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    # Before: the first client took all 12 streams (then 503), and the second got 503 too.
    caplog.set_level(logging.INFO)
    async with serving(services, sse_max_clients=12, streams_per_client=4) as (_, server), streams() as held:
        assert server.port is not None and server.app is not None
        for _ in range(14):
            held.append(await ask(server.port, EVENTS_PATH))
        assert [a.status for a in held] == [200] * 4 + [429] * 10
        refused = held[-1]
        assert refused.header("Retry-After") == "10"
        assert refused.body["success"] is False
        assert "Too many open event streams from your address (4)" in refused.body["message"], refused.body
        assert len(warnings_with(caplog, "holds 4 event streams")) == 1  # once for the spell, not per request
        assert "client 127.0.0.1 holds 4" in warnings_with(caplog, "holds 4 event streams")[0]

        held.append(await ask(server.port, EVENTS_PATH, source=OTHER))
        assert held[-1].status == 200, held[-1].body

        held[0].close()  # the first client lets one go: it may open one again
        await wait_until("the server noticed", lambda: open_streams(server.app) == 4)
        held.append(await ask(server.port, EVENTS_PATH))
        assert held[-1].status == 200, held[-1].body
        held.append(await ask(server.port, EVENTS_PATH))
        assert held[-1].status == 429
        assert len(warnings_with(caplog, "holds 4 event streams")) == 1, "still the same spell"


# ------------------------------------------------------------------------------ two kinds, counted apart
async def test_log_streams_and_event_streams_are_counted_apart(services: Services) -> None:
    # Before: one count for both: a client's log streams used up the event streams, and the other way round.
    limits = {"sse_max_clients": 4, "log_stream_max_clients": 4, "streams_per_client": 2}
    async with serving(services, **limits) as (orchestrator, server), streams() as held:
        assert server.port is not None and server.app is not None
        port, log_path = server.port, f"/api/snapshot/runs/{run_id(orchestrator)}/log/stream"

        async def statuses(path: str, source: str, count: int) -> list[int]:
            for _ in range(count):
                held.append(await ask(port, path, source=source))
            return [a.status for a in held[-count:]]

        # Per client: two of each kind.
        assert await statuses(log_path, "127.0.0.1", 3) == [200, 200, 429]
        assert "log streams from your address (2)" in held[-1].body["message"]
        assert await statuses(EVENTS_PATH, "127.0.0.1", 3) == [200, 200, 429]
        # In all: four of each kind.
        assert await statuses(log_path, OTHER, 2) == [200, 200]
        assert await statuses(log_path, THIRD, 1) == [503]
        assert "Too many open log streams (4)" in held[-1].body["message"]
        assert await statuses(EVENTS_PATH, THIRD, 2) == [200, 200]  # the log streams are full; events are not
        assert await statuses(EVENTS_PATH, OTHER, 1) == [503]

        async with aiohttp.ClientSession() as session, session.get(str(server.make_url("/health"))) as health:
            counts = await health.json()
        assert (counts["sseClients"], counts["logStreams"]) == (4, 4)
        assert (open_streams(server.app), open_streams(server.app, StreamKind.LOG)) == (4, 4)


# ------------------------------------------------------------------------------ room kept for the token
async def test_a_client_with_the_token_gets_in_when_anonymous_ones_have_filled_their_share(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    # Before: anonymous clients could take every stream, and the operator's own got 503 with the rest.
    caplog.set_level(logging.INFO)
    async with serving(services, token=TOKEN, sse_max_clients=20, streams_per_client=18) as (_, server):
        assert server.port is not None
        port = server.port
        async with streams() as held:
            for _ in range(18):  # 20 minus the tenth kept for the token; and this address's whole cap
                held.append(await ask(port, EVENTS_PATH))
            assert {a.status for a in held} == {200}
            held.append(await ask(port, EVENTS_PATH, source=OTHER))
            assert held[-1].status == 503 and "without the token" in held[-1].body["message"], held[-1].body
            assert held[-1].header("Retry-After") == "10"
            # A wrong token is no token: anonymous (and counted as a guess).
            held.append(await ask(port, EVENTS_PATH, source=OTHER, headers={"Authorization": "Bearer wrong-token"}))
            assert held[-1].status == 503
            assert len(warnings_with(caplog, "refused a wrong token")) == 1

            # A page cannot send the header on its stream: a bearer read earns it the read cookie instead, which
            # may use part of the kept room.
            cookie = await read_cookie(server)
            held.append(await ask(port, EVENTS_PATH, source=OTHER, headers={"Cookie": cookie}))
            assert held[-1].status == 200, held[-1].body
            held.append(await ask(port, EVENTS_PATH, source=THIRD, headers={"Cookie": cookie}))
            assert held[-1].status == 503 and "19 with the read cookie" in held[-1].body["message"], held[-1].body
            # With the token: let in, though this address holds its cap (whoever has the token may start and
            # cancel runs; an office behind one NAT address that has it must not share one cap).
            held.append(await ask(port, EVENTS_PATH, headers={"Authorization": f"Bearer {TOKEN}"}))
            assert held[-1].status == 200, held[-1].body
            # Then the whole total is taken.
            held.append(await ask(port, EVENTS_PATH, source=OTHER, headers={"Authorization": f"Bearer {TOKEN}"}))
            assert held[-1].status == 503 and "Too many open event streams (20)" in held[-1].body["message"]
        assert len(warnings_with(caplog, "the most allowed without the token")) == 1


async def read_cookie(server: Any) -> str:
    """``name=value`` of the read cookie a bearer read earns."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(str(server.make_url("/api/snapshot/status")), headers={"Authorization": f"Bearer {TOKEN}"}) as got,
    ):
        assert got.status == 200
        return got.headers["Set-Cookie"].split(";")[0]


async def test_the_read_cookie_is_capped_per_address_and_leaves_the_bearer_token_its_room(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    # Before: a request with the read cookie counted as one with the token. One bearer read earned a cookie, and
    # 55 streams opened with it from one address took all 50 (no cap per address, the kept room too); the
    # operator with the bearer token then got 503. The cookie reaches every server on the host.
    caplog.set_level(logging.INFO)
    async with serving(services, token=TOKEN, sse_max_clients=50, streams_per_client=5) as (_, server):
        assert server.port is not None and server.app is not None
        port = server.port
        cookie = {"Cookie": await read_cookie(server)}
        async with streams() as held:
            for _ in range(55):
                held.append(await ask(port, EVENTS_PATH, headers=cookie))
            assert [a.status for a in held] == [200] * 5 + [429] * 50
            assert "Too many open event streams with the read cookie from your address (5)" in held[-1].body["message"]
            # Counted apart from the address's anonymous streams: a page behind a busy NAT address gets in.
            for _ in range(6):
                held.append(await ask(port, EVENTS_PATH))
            assert [a.status for a in held[-6:]] == [200] * 5 + [429]
            # From many addresses, cookie streams fill the room but for the streams kept for the bearer token.
            for n in range(2, 10):
                for _ in range(5):
                    held.append(await ask(port, EVENTS_PATH, source=f"127.0.0.{n}", headers=cookie))
            assert [a.status for a in held[-40:]] == [200] * 37 + [503] * 3
            assert "47 with the read cookie" in held[-1].body["message"], held[-1].body
            assert open_streams(server.app) == 47
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            for _ in range(4):
                held.append(await ask(port, EVENTS_PATH, source="127.0.0.20", headers=bearer))
            assert [a.status for a in held[-4:]] == [200, 200, 200, 503]
    assert len(warnings_with(caplog, "event streams with the read cookie, the most one address may")) == 1
    assert len(warnings_with(caplog, "the most allowed with the read cookie (3 more are kept")) == 1


# ------------------------------------------------------------------------------------ X-Forwarded-For
async def test_forwarded_for_names_the_client_behind_a_trusted_proxy(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    # Before: every client behind the proxy had the proxy's address (and there was no cap to count them by).
    caplog.set_level(logging.INFO)
    proxies = parse_trusted_proxies("127.0.0.1")
    async with (
        serving(services, trusted_proxies=proxies, streams_per_client=2) as (orchestrator, server),
        streams() as held,
    ):
        assert server.port is not None
        port = server.port

        async def statuses(forwarded: str, count: int = 3, source: str = "127.0.0.1") -> list[int]:
            for _ in range(count):
                held.append(await ask(port, EVENTS_PATH, source=source, headers={"X-Forwarded-For": forwarded}))
            return [a.status for a in held[-count:]]

        assert await statuses("203.0.113.5") == [200, 200, 429]
        assert server.app is not None  # the server's side names the client too (in the lines of a drop)
        assert any(c.peer.startswith("203.0.113.5 (via 127.0.0.1:") for c in clients(server.app))
        assert await statuses("203.0.113.6") == [200, 200, 429]  # another client behind the same proxy
        # A client's own entry is left of the one the proxy appended: it changes nothing.
        assert await statuses("192.0.2.99, 203.0.113.6", count=1) == [429]
        # IPv6 clients are counted by their /64.
        assert await statuses("2001:db8:1:2::5", count=1) == [200]
        assert await statuses("2001:db8:1:2::6", count=2) == [200, 429]
        assert await statuses("2001:db8:1:3::6", count=1) == [200]
        # From a peer that is not a trusted proxy, the header counts for nothing.
        assert await statuses("192.0.2.1", count=1, source=OTHER) == [200]
        assert await statuses("192.0.2.2", count=2, source=OTHER) == [200, 429]
        # One line a minute names the client refused first; the next one counts the rest, by client.
        assert isinstance(orchestrator.clock, FakeClock)
        orchestrator.clock.step_wall_clock(timedelta(seconds=61))
        assert await statuses("192.0.2.3", count=1, source=OTHER) == [429]
    capped = warnings_with(caplog, "event streams, the most one address may")
    assert [line.split()[1] for line in capped] == ["203.0.113.5", OTHER], capped
    assert capped[1].endswith(
        f"(and 4 more refused since the last such line, most from 203.0.113.6 (2), 2001:db8:1:2::/64 (1), {OTHER} (1))"
    ), capped


async def test_the_64s_of_one_56_share_a_cap(caplog: pytest.LogCaptureFixture, services: Services) -> None:
    # Before: each /64 had its own cap and nothing wider: 20 /64s inside one /56 (what one home gets) took 45 of
    # 50 streams.
    caplog.set_level(logging.INFO)
    proxies = parse_trusted_proxies("127.0.0.1")
    async with (
        serving(services, trusted_proxies=proxies, sse_max_clients=50, streams_per_client=3) as (_, server),
        streams() as held,
    ):
        assert server.port is not None and server.app is not None
        for n in range(20):
            for _ in range(3):
                headers = {"X-Forwarded-For": f"2001:db8:0:{n:x}::1"}
                held.append(await ask(server.port, EVENTS_PATH, headers=headers))
        got = [a.status for a in held]
        assert got.count(200) == 12 and got[:12] == [200] * 12, got
        assert "Too many open event streams from your network (12)" in held[-1].body["message"], held[-1].body
        held.append(await ask(server.port, EVENTS_PATH, headers={"X-Forwarded-For": "2001:db8:0:100::1"}))
        assert held[-1].status == 200, "the next /56 is another subscriber"
        assert open_streams(server.app) == 13
    assert warnings_with(caplog, "the most one network may")[0].startswith("network 2001:db8::/56 holds 12 event")


async def test_a_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    # Before: no cap at all; a header that named a fresh client each time must not make one.
    caplog.set_level(logging.INFO)
    async with serving(services, streams_per_client=2) as (_, server), streams() as held:
        assert server.port is not None
        for n in range(4):
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            held.append(await ask(server.port, EVENTS_PATH, headers=headers))
        assert [a.status for a in held] == [200, 200, 429, 429]
    hints = warnings_with(caplog, "X-Forwarded-For, which is ignored")
    assert len(hints) == 1 and "127.0.0.1 is not a --trusted-proxy" in hints[0], hints


async def test_guessing_and_the_trigger_log_go_by_the_forwarded_client(
    caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    """Behind a trusted proxy, one client that keeps guessing tokens is blocked, not everyone behind the proxy;
    the trigger's log line names the client, not the proxy."""
    caplog.set_level(logging.INFO)
    proxies = parse_trusted_proxies("127.0.0.1")
    async with (
        serving(services, token=TOKEN, trusted_proxies=proxies) as (_, server),
        aiohttp.ClientSession() as session,
    ):
        url = str(server.make_url("/api/snapshot/trigger"))

        async def trigger(client: str, token: str) -> int:
            headers = {"X-Forwarded-For": client, "Authorization": f"Bearer {token}"}
            async with session.post(url, headers=headers) as answer:
                return answer.status

        statuses = [await trigger("203.0.113.5", f"guess-{n}") for n in range(21)]
        assert statuses == [401] * 20 + [429]
        assert await trigger("203.0.113.6", "guess-x") == 401  # another client: its own count
        assert await trigger("203.0.113.6", TOKEN) == 202
        assert await trigger("203.0.113.5", TOKEN) == 429  # still blocked, before any comparison
    assert any(r.getMessage() == "HTTP trigger from 203.0.113.6" for r in caplog.records)
    assert "from 203.0.113.5" in warnings_with(caplog, "refused a wrong token")[0]


# ------------------------------------------------------------------------- a real service, 2,000 streams
SCRIPT_STREAMS = 2000
CONNECTING_AT_ONCE = 100


@pytest.fixture
def fds_for_a_script() -> Iterator[None]:
    """The test holds up to 2,000 sockets, and so does the service, which inherits this limit."""
    with descriptors(2 * SCRIPT_STREAMS + 500):
        yield


@pytest.mark.process
async def test_a_script_opening_2000_streams_no_longer_locks_everyone_out(
    fds_for_a_script: None, service_factory: Any
) -> None:
    # Before: the script's 2,000 streams all opened (the service allows 2,000), and every other client got 503.
    # No cap on connections by address: this is about the streams' own cap (tests/faults/test_connection_caps.py
    # has the connections').
    service: ServiceProcess = service_factory(
        "--command", "true", "--interval", "100000", "--connections-per-client", "0"
    )
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def one() -> Answer:
        async with gate:
            return await ask(service.port, EVENTS_PATH)

    async with streams() as held:
        held.extend(await asyncio.gather(*(one() for _ in range(SCRIPT_STREAMS))))
        statuses = sorted(a.status for a in held)
        assert statuses == [200] * 20 + [429] * (SCRIPT_STREAMS - 20), {s: statuses.count(s) for s in set(statuses)}

        browser = await ask(service.port, EVENTS_PATH, source=OTHER)
        held.append(browser)
        assert browser.status == 200
        assert browser.sock is not None
        if b"event: status" not in browser.received:  # and it gets the state
            await asyncio.wait_for(read_until(browser.sock, b"event: status"), 10)
        assert service.get_json("/health")["sseClients"] == 21
    logs = service.logs()
    assert logs.count("holds 20 event streams") == 1, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
