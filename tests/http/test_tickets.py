"""Stream tickets: the pure issue-and-redeem rules as a table (``now`` passed in), then over real HTTP (aiohttp's
test server, a fake clock, a scripted job): issued to the token only, one read each, refused with a message
saying why once expired, spent or forged, a stream opened with one cut after the read cookie's lifetime, and
the CORS answers a page on another origin needs to ask for one and use it."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.http.accesslog import RedactQueries
from orchestrator.http.app import create_app
from orchestrator.http.guesses import GUESSES_PER_MINUTE
from orchestrator.http.readcookie import ReadCookies
from orchestrator.http.readcookie import Verdict as CookieVerdict
from orchestrator.http.sse import ROOMS
from orchestrator.http.streamlimits import Credential, StreamKind
from orchestrator.http.tickets import StreamTickets, TicketVerdict
from orchestrator.service import Orchestrator
from tests.fakes import T0, Client, ScriptedJob, Services, end_startup
from tests.support import ServiceProcess

TOKEN = "s3cret-Token+/=xyz"
ALLOWED = "https://dash.example.com:8443"
TICKET = "/api/stream-ticket"
EVENTS = "/api/snapshot/events"
STATUS = "/api/snapshot/status"
PORT = 8001
SPENT = "expired or was already used"


# ------------------------------------------------------------------------------------------------ pure
def test_a_ticket_opens_one_read_on_its_port_within_a_minute() -> None:
    tickets = StreamTickets()
    first = tickets.issue(PORT, T0)
    assert first.expires == T0 + timedelta(seconds=60)
    assert tickets.issue(PORT, T0).value != first.value  # two of one second differ
    second, third, fourth = (tickets.issue(PORT, T0).value for _ in range(3))
    table = [
        (first.value, PORT, T0, TicketVerdict.VALID),
        (first.value, PORT, T0, TicketVerdict.USED),
        (second, PORT + 1, T0, TicketVerdict.FORGED),  # another port's service
        (second, PORT, T0 + timedelta(seconds=59), TicketVerdict.VALID),
        (third, PORT, T0 + timedelta(seconds=60), TicketVerdict.EXPIRED),
        (second, PORT, T0 + timedelta(seconds=61), TicketVerdict.EXPIRED),  # spent, and now too old as well
        (fourth, PORT, T0 - timedelta(hours=1), TicketVerdict.VALID),  # a clock that stepped back
    ]
    for value, port, now, expected in table:
        assert tickets.redeem(value, port, now) is expected, (value, port, now)


def test_anything_not_issued_here_is_forged() -> None:
    tickets, other = StreamTickets(), StreamTickets()
    # A nonce of hex digits only has no case to change: take a ticket whose nonce has a letter.
    value = next(v for v in (tickets.issue(PORT, T0).value for _ in range(1000)) if not v.split(".")[1].isdigit())
    expiry, nonce, mac = value.split(".")
    cookies = ReadCookies()
    cookie = cookies.issue(PORT, T0)
    forgeries = [
        other.issue(PORT, T0).value,  # another service, or this one before a restart
        f"{int(expiry) + 3600}.{nonce}.{mac}",  # a longer life
        f"{expiry}.{'0' * 16}.{mac}",
        f"{expiry}.{nonce}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",
        cookie,  # a read cookie is no ticket
        f"{cookie.partition('.')[0]}.{nonce}.{cookie.partition('.')[2]}",
        "",
        "1.2.3",
        f"{expiry}.{nonce.upper()}.{mac}",
        f"{expiry}.{nonce}.{mac}.x",
        f"١٢٣.{nonce}.{mac}",  # digits, but not ASCII ones
        "x" * 10_000,
    ]
    for forgery in forgeries:
        assert tickets.redeem(forgery, PORT, T0) is TicketVerdict.FORGED, forgery
    assert cookies.check(value, PORT, T0) is CookieVerdict.FORGED  # nor a ticket a read cookie
    assert tickets.redeem(value, PORT, T0) is TicketVerdict.VALID  # none of that spent it


def test_spent_tickets_are_remembered_until_they_expire_and_no_more_than_the_cap() -> None:
    tickets = StreamTickets(max_remembered=2)
    a, b, c = (tickets.issue(PORT, T0).value for _ in range(3))
    assert tickets.redeem(a, PORT, T0) is TicketVerdict.VALID
    assert tickets.redeem(b, PORT, T0) is TicketVerdict.VALID
    assert tickets.redeem(c, PORT, T0) is TicketVerdict.BUSY  # refused, never let in twice
    assert tickets.remembered == 2
    later = T0 + timedelta(seconds=60)
    fresh = tickets.issue(PORT, later).value
    assert tickets.redeem(fresh, PORT, later) is TicketVerdict.VALID
    assert tickets.remembered == 1  # a and b could open nothing any more: forgotten
    assert tickets.redeem(a, PORT, later) is TicketVerdict.EXPIRED


def test_an_access_log_line_never_shows_a_query() -> None:
    """Should anyone turn aiohttp's access log on: its lines print the request line with the query."""
    line = '127.0.0.1 [07/Dec/2026:06:50:00 +0000] "GET /api/snapshot/events?%74icket=1.ab.cd&x=1 HTTP/1.1" 200'
    record = logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1, "%s", (line,), None)
    assert RedactQueries().filter(record)
    assert record.getMessage() == line.replace("?%74icket=1.ab.cd&x=1", "?<redacted>")
    plain = logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1, '"GET /health HTTP/1.1" 200', None, None)
    assert RedactQueries().filter(plain) and plain.getMessage() == '"GET /health HTTP/1.1" 200'


# ------------------------------------------------------------------------------------------------ HTTP
@dataclass
class Served:
    client: Client
    orchestrator: Orchestrator
    clock: FakeClock


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(
    services: Services, tmp_path: Path, aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]]
) -> Serve:
    async def start(**overrides: Any) -> Served:
        clock, job = FakeClock(T0), ScriptedJob()
        orchestrator = services.build(clock=clock, job=job, **overrides)
        client = await aiohttp_client(create_app(orchestrator))
        await end_startup(orchestrator, job)
        return Served(client, orchestrator, clock)

    return start


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_ticket(served: Served, headers: dict[str, str] | None = None) -> str:
    response = await served.client.post(TICKET, headers=headers or bearer())
    assert response.status == 200, await response.text()
    value: str = (await response.json())["ticket"]
    return value


async def refused(response: aiohttp.ClientResponse, status: int, words: str) -> None:
    assert response.status == status, (response.status, await response.text())
    body = await response.json()
    assert body["success"] is False and words in body["message"], body


async def first_status(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(5):
        line = await stream.content.readline()
        while not line.startswith(b"data:"):
            line = await stream.content.readline()
    document: dict[str, Any] = json.loads(line[5:])
    return document


async def test_the_token_gets_a_ticket_and_a_service_without_one_says_none_is_needed(
    serve: Serve, tmp_path: Path
) -> None:
    protected = await serve(token=TOKEN)
    await refused(await protected.client.post(TICKET), 401, "token")
    response = await protected.client.post(TICKET, headers=bearer())
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"ticket", "expiresAt", "expiresInSeconds"}
    assert body["expiresAt"] == "2026-01-20T10:01:00.000Z" and body["expiresInSeconds"] == 60
    assert len(body["ticket"].split(".")) == 3
    open_service = await serve(root=tmp_path / "open")
    response = await open_service.client.post(TICKET)
    assert await response.json() == {"ticket": None, "expiresAt": None, "expiresInSeconds": None}


async def test_a_ticket_opens_one_protected_read_and_says_why_it_no_longer_does(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    await refused(await served.client.get(EVENTS), 401, "token")
    ticket = await new_ticket(served)
    stream = await served.client.get(EVENTS, params={"ticket": ticket})
    try:
        assert stream.status == 200
        assert (await first_status(stream))["running"] is False
        # Counted like the read cookie's streams: in the reserve, capped per address.
        assert served.client.app[ROOMS][StreamKind.EVENTS].held_by("127.0.0.1", Credential.COOKIE) == 1
        await refused(await served.client.get(EVENTS, params={"ticket": ticket}), 401, SPENT)
    finally:
        stream.close()
    ticket = await new_ticket(served)
    response = await served.client.get(STATUS, params={"ticket": ticket})  # any read, not only streams
    assert response.status == 200 and "Set-Cookie" not in response.headers
    late = await new_ticket(served)
    served.clock.advance(timedelta(seconds=60))
    response = await served.client.get(EVENTS, params={"ticket": late})
    await refused(response, 401, SPENT)
    assert "POST /api/stream-ticket" in (await response.json())["message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_forged_tickets_count_as_guesses_and_spent_ones_do_not(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    ticket = await new_ticket(served)
    assert (await served.client.get(STATUS, params={"ticket": ticket})).status == 200
    for _ in range(GUESSES_PER_MINUTE * 2):  # a browser that keeps reconnecting with a spent ticket
        await refused(await served.client.get(STATUS, params={"ticket": ticket}), 401, SPENT)
    forged = ticket[:-1] + ("0" if ticket[-1] != "0" else "1")
    for _ in range(GUESSES_PER_MINUTE):
        await refused(await served.client.get(STATUS, params={"ticket": forged}), 401, "not valid")
    await refused(await served.client.get(STATUS, params={"ticket": forged}), 429, "Too many")


async def test_on_open_reads_a_ticket_only_earns_the_reserve(serve: Serve) -> None:
    served = await serve(token=TOKEN)
    ticket = await new_ticket(served)
    for _ in range(2):  # spent the second time: still let in, as anyone is
        response = await served.client.get(STATUS, params={"ticket": ticket})
        assert response.status == 200
    stream = await served.client.get(EVENTS, params={"ticket": await new_ticket(served)})
    try:
        assert stream.status == 200
        await first_status(stream)
        assert served.client.app[ROOMS][StreamKind.EVENTS].held_by("127.0.0.1", Credential.COOKIE) == 1
    finally:
        stream.close()


async def test_a_stream_opened_with_a_ticket_ends_after_the_read_cookies_lifetime(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    stream = await served.client.get(EVENTS, params={"ticket": await new_ticket(served)})
    try:
        await first_status(stream)
        served.clock.advance(timedelta(hours=12))
        async with asyncio.timeout(5):
            with pytest.raises(aiohttp.ClientPayloadError):
                while await stream.content.readline():
                    pass
    finally:
        stream.close()


async def test_another_origin_may_ask_for_a_ticket_and_stream_with_it(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True, allow_origins=(ALLOWED,))
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = await served.client.options(TICKET, headers={"Origin": ALLOWED, **preflight})
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    other = await served.client.options(TICKET, headers={"Origin": "https://evil.example", **preflight})
    await refused(other, 403, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in other.headers
    await refused(await served.client.post(TICKET, headers={"Origin": "https://evil.example", **bearer()}), 403, "")

    asked = await served.client.post(TICKET, headers={"Origin": ALLOWED, **bearer()})
    assert asked.status == 200 and asked.headers["Access-Control-Allow-Origin"] == ALLOWED
    last_run = served.orchestrator.view.status()["lastRun"]["runId"]
    for path in (EVENTS, f"/api/snapshot/runs/{last_run}/log/stream"):
        ticket = await new_ticket(served)
        stream = await served.client.get(path, params={"ticket": ticket}, headers={"Origin": ALLOWED})
        try:
            assert stream.status == 200, (path, await stream.text())
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.headers["Access-Control-Allow-Origin"] == ALLOWED, path
            assert "Origin" in stream.headers["Vary"]
        finally:
            stream.close()


async def test_a_ticket_never_authorises_a_change(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    for path in ("/api/snapshot/trigger", "/api/snapshot/pause", TICKET):
        ticket = await new_ticket(served)
        await refused(await served.client.post(path, params={"ticket": ticket}), 401, "token")
        # Still unspent: a change never even looked at it.
        assert (await served.client.get(STATUS, params={"ticket": ticket})).status == 200


# ------------------------------------------------------------------------------------ a real process
def _ask(service: ServiceProcess, method: str, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """``method target``: the status and the body, or for an event stream its first event."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        connection.request(method, target, body=b"" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        if response.getheader("Content-Type", "").startswith("text/event-stream"):
            line = response.fp.readline()
            while not line.startswith(b"data:"):
                line = response.fp.readline()
            return response.status, line
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.process
def test_no_ticket_nor_token_reaches_the_service_log(service_factory: Callable[..., ServiceProcess]) -> None:
    """The URL of a ticket-opened read holds the ticket: the request line must not be logged (aiohttp's access
    log prints it with the query), at any log level."""
    service = service_factory("--token", TOKEN, "--token-for-reads", "--log-level", "debug")
    status, body = _ask(service, "POST", TICKET, bearer())
    assert status == 200, body
    ticket = json.loads(body)["ticket"]
    status, event = _ask(service, "GET", f"{EVENTS}?ticket={ticket}", {})
    assert (status, event.startswith(b"data:")) == (200, True)
    assert _ask(service, "GET", f"{EVENTS}?ticket={ticket}", {})[0] == 401  # spent
    forged = ticket[:-1] + ("0" if ticket[-1] != "0" else "1")
    assert _ask(service, "GET", f"{STATUS}?ticket={forged}", {})[0] == 401
    assert _ask(service, "GET", f"/badge/snapshot.svg?ticket={forged}", {})[0] == 401
    service.stop()
    logs = service.logs()
    assert "listening on" in logs and "refused a wrong token" in logs  # the log was written, at debug
    mac = ticket.rpartition(".")[2]
    for secret in (ticket, mac, forged, TOKEN, "ticket="):
        assert secret not in logs, secret
