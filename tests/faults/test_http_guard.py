"""The HTTP surface under attack: missing and wrong tokens, cookies offered for changes, other sites' pages,
oversized bodies, trigger floods, unknown paths and wrong methods, and paths that try to leave the page's
folder. Requests go over a real socket to the real app (aiohttp's test server; raw bytes where a client would
tidy the path first); the job is scripted and the clock fake, so "a minute later" needs no sleeping."""

from __future__ import annotations

import asyncio
import hmac
import http.client
import ipaddress
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from orchestrator.config import MAX_MINUTES
from orchestrator.core.clock import FakeClock
from orchestrator.http.app import MAX_BODY_BYTES, create_app
from orchestrator.http.guesses import GUESSES_PER_MINUTE
from orchestrator.service import Orchestrator
from tests.fakes import T0, ScriptedJob, Services, end_startup, settle
from tests.support import ServiceProcess, start_service

Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]
TOKEN = "s3cret-Token+/=xyz"
TRIGGER = "/api/snapshot/trigger"
CANCEL = "/api/snapshot/cancel"
STATUS = "/api/snapshot/status"
EVENTS = "/api/snapshot/events"
ALLOWED = "https://dash.example.com:8443"
SECRET = "TOP-SECRET-CONTENT"
READ_COOKIE_SECONDS = 12 * 3600


@dataclass
class Served:
    client: Client
    orchestrator: Orchestrator
    job: ScriptedJob
    clock: FakeClock

    @property
    def origin(self) -> str:
        return f"http://{self.client.host}:{self.client.port}"

    async def status(self) -> dict[str, Any]:
        response = await self.client.get(STATUS, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document

    async def nothing_happened(self, before: dict[str, Any]) -> None:
        """No trigger was queued and no run started since ``before`` was taken."""
        await settle()
        assert self.orchestrator.unit.queue.empty(), "a trigger is waiting on the queue"
        after = await self.status()
        keys = ("running", "pendingTriggers", "queued", "lastRun", "currentRun")
        assert {k: after[k] for k in keys} == {k: before[k] for k in keys}
        assert self.job.started.empty()


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    """A page folder of our own, with a secret file beside it (outside) and links pointing out of it."""
    root = tmp_path / "web"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>test page</title>")
    (root / "app.js").write_text("console.log('app');")
    (root / "sub" / "ok.txt").write_text("fine")
    (root / ".hidden").write_text(SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "alias.js").symlink_to(root / "app.js")  # a link that stays inside is fine
    return root


@pytest.fixture
async def serve(
    services: Services, web_dir: Path, aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]]
) -> Serve:
    """Serve an in-process service (each on its own clock and job) over HTTP, once its start-up run ended."""

    async def start(**overrides: Any) -> Served:
        clock, job = FakeClock(T0), ScriptedJob()
        orchestrator = services.build(clock=clock, job=job, **overrides)
        client = await aiohttp_client(create_app(orchestrator, web_dir=web_dir))
        await end_startup(orchestrator, job)
        return Served(client, orchestrator, job, clock)

    return start


def spy_on_compare_digest(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the lengths ``hmac.compare_digest`` is called with (and let it compare as usual)."""
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return compared


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def expect_error(response: aiohttp.ClientResponse, status: int, *words: str) -> dict[str, Any]:
    """``response`` is ``status`` with the one JSON error shape, and its message mentions ``words``."""
    assert response.status == status, (response.status, await response.text())
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert body["success"] is False and isinstance(body["message"], str) and body["message"], body
    for word in words:
        assert word.lower() in body["message"].lower(), body
    return body


# ------------------------------------------------------------------------------------------------ auth
async def test_changes_need_the_bearer_token(serve: Serve) -> None:
    served = await serve(token=TOKEN)
    before = await served.status()
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        for path in (TRIGGER, CANCEL):
            response = await served.client.post(path, headers=headers)
            await expect_error(response, 401, "token")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await served.nothing_happened(before)

    response = await served.client.post(TRIGGER, headers={"Authorization": f"bearer {TOKEN}"}, json={"reason": "ok"})
    assert response.status == 202  # the scheme is case-insensitive
    run = await served.job.next_start()
    assert run.ctx.reason == "ok"
    response = await served.client.post(CANCEL, headers=bearer())
    assert response.status == 202


@pytest.mark.parametrize("wrong", [TOKEN[:-1] + "Q", TOKEN[:-1], TOKEN + "x", "x" * 200])
async def test_a_wrong_token_is_compared_in_constant_time_and_refused(
    serve: Serve, wrong: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same length or not, the check goes through ``hmac.compare_digest`` on equal-length digests, so neither
    the token's content nor its length shows in how long a refusal takes."""
    served = await serve(token=TOKEN)
    before = await served.status()
    compared = spy_on_compare_digest(monkeypatch)
    response = await served.client.post(TRIGGER, headers=bearer(wrong))
    await expect_error(response, 401, "not valid")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert compared == [(32, 32)]
    await served.nothing_happened(before)


async def test_reads_stay_open_without_token_for_reads(serve: Serve) -> None:
    served = await serve(token=TOKEN)
    for path in (STATUS, "/api/snapshot/progress", "/health", "/", "/app.js"):
        assert (await served.client.get(path)).status == 200, path
    async with served.client.get(EVENTS) as stream:
        assert stream.status == 200


async def read_ok(served: Served, path: str, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """GET ``path``: it is let in (for the stream, its first status event arrives)."""
    async with served.client.get(path, headers=headers) as response:
        assert response.status == 200, (path, headers, await response.text())
        if path == EVENTS:
            line = await asyncio.wait_for(response.content.readline(), 5)
            while not line.startswith(b"data:"):
                line = await asyncio.wait_for(response.content.readline(), 5)
            assert json.loads(line[5:])["running"] is False
    return response


async def issued_read_cookie(served: Served) -> tuple[str, str]:
    """The cookie a bearer read earns, checked for its attributes, then left in the client's cookie jar."""
    response = await read_ok(served, STATUS, bearer())
    cookies = response.headers.getall("Set-Cookie")
    assert len(cookies) == 1, cookies
    name, _, rest = cookies[0].partition("=")
    value, *attributes = (part.strip() for part in rest.split(";"))
    assert name == f"snapshot_read_{served.client.port}"
    expected = {"httponly", "samesite=strict", "path=/api/", f"max-age={READ_COOKIE_SECONDS}"}
    assert {a.lower() for a in attributes} >= expected, attributes
    return name, value


async def test_token_for_reads_takes_the_header_or_the_cookie_it_issues(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    for path in (STATUS, "/api/snapshot/progress", EVENTS):
        served.client.session.cookie_jar.clear()  # the bearer read of the path before left a cookie
        await expect_error(await served.client.get(path), 401, "token")
        await expect_error(await served.client.get(path, headers=bearer("wrong-token")), 401)
        await read_ok(served, path, bearer())
    for path in ("/health", "/", "/app.js"):  # the page must load to ask for the token
        assert (await served.client.get(path)).status == 200, path
    served.client.session.cookie_jar.clear()

    _, value = await issued_read_cookie(served)
    # Never the token: other servers on this host receive it (cookies ignore ports). An expiry and a MAC.
    assert re.fullmatch(r"[0-9]+\.[0-9a-f]{64}", value) and TOKEN not in value, value
    for path in (STATUS, "/api/snapshot/progress", EVENTS):  # the jar sends it back, as a browser would
        await read_ok(served, path)
    for path in (STATUS, EVENTS):  # and it is not a token: never accepted as the bearer header
        await expect_error(await served.client.get(path, headers=bearer(value)), 401, "not valid")
    for path in (TRIGGER, CANCEL):
        await expect_error(await served.client.post(path, headers=bearer(value)), 401, "not valid")


def forged(served: Served, value: str, port: int | None = None) -> dict[str, str]:
    return {"Cookie": f"snapshot_read_{port or served.client.port}={value}"}


async def test_a_forged_read_cookie_is_refused_in_constant_time(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    _, value = await issued_read_cookie(served)
    served.client.session.cookie_jar.clear()
    other_port = served.client.port + 1
    guess = hmac.new(b"another-token", b"snapshot-orchestrator read cookie", "sha256").hexdigest()
    forgeries = [
        forged(served, TOKEN),  # the token itself under the new name
        forged(served, guess),
        forged(served, value[:-1] + ("0" if value[-1] != "0" else "1")),
        forged(served, value[:32]),
        {"Cookie": f"snapshot_token={TOKEN}"},  # the token itself as a cookie: not a read cookie, refused
    ]
    compared = spy_on_compare_digest(monkeypatch)
    for headers in forgeries:
        for path in (STATUS, EVENTS):
            await expect_error(await served.client.get(path, headers=headers), 401)
    assert (64, 64) in compared and all(b == 64 for _, b in compared), compared

    # Bound to the port the browser addressed: another service on this host (same token, say) that receives
    # this cookie can use it neither under its own name nor under ours.
    elsewhere = {"Host": f"localhost:{other_port}"}
    for headers in (forged(served, value), forged(served, value, other_port)):
        await expect_error(await served.client.get(STATUS, headers={**headers, **elsewhere}), 401)
    await read_ok(served, STATUS, forged(served, value))

    # An earlier page's cookie holding the token is expired wherever it still shows up.
    response = await served.client.get(STATUS, headers={"Cookie": f"snapshot_token={TOKEN}"})
    legacy = [c for c in response.headers.getall("Set-Cookie") if c.startswith("snapshot_token=")]
    assert len(legacy) == 1 and "max-age=0" in legacy[0].lower() and TOKEN not in legacy[0], legacy


async def test_the_read_cookie_expires_after_twelve_hours_and_a_bearer_read_renews_it(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True, interval_minutes=MAX_MINUTES)
    _, value = await issued_read_cookie(served)  # the client's jar keeps it: only the service's check counts
    served.clock.advance(timedelta(seconds=READ_COOKIE_SECONDS - 1))
    await read_ok(served, EVENTS)
    served.clock.advance(timedelta(seconds=1))
    # An expired cookie the service did issue is no guess: a page that slept all night is not blocked (429).
    for _ in range(GUESSES_PER_MINUTE + 5):
        for path in (STATUS, EVENTS):
            await expect_error(await served.client.get(path), 401, "expired", "bearer")
    _, fresh = await issued_read_cookie(served)
    assert fresh != value
    await read_ok(served, EVENTS)


async def _first_status(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(5):
        line = await stream.content.readline()
        while not line.startswith(b"data:"):
            line = await stream.content.readline()
    document: dict[str, Any] = json.loads(line[5:])
    return document


async def _ended(stream: aiohttp.ClientResponse) -> bool:
    """Whether the server ends ``stream`` within a bounded wait (its events up to then are skipped)."""
    try:
        async with asyncio.timeout(5):
            while await stream.content.readline():
                pass
    except aiohttp.ClientPayloadError:  # the connection closed in the middle of the chunked body
        return True
    except TimeoutError:
        return False
    return True


async def test_an_event_stream_opened_with_the_read_cookie_ends_when_the_cookie_expires(serve: Serve) -> None:
    """Else a cookie used once before it expires would keep reading for as long as the service runs. The page
    reconnects, is refused, and gets a new cookie with its token; a stream opened with the token itself stays."""
    served = await serve(token=TOKEN, token_for_reads=True, interval_minutes=MAX_MINUTES)
    name, value = await issued_read_cookie(served)
    served.client.session.cookie_jar.clear()
    by_cookie = await served.client.get(EVENTS, headers={"Cookie": f"{name}={value}"})
    by_token = await served.client.get(EVENTS, headers=bearer())
    try:
        await _first_status(by_cookie)
        await _first_status(by_token)
        served.clock.advance(timedelta(seconds=READ_COOKIE_SECONDS))
        assert await _ended(by_cookie)
        response = await served.client.post("/api/snapshot/pause", headers=bearer(), json={"reason": "still here?"})
        assert response.status == 200
        paused = await _first_status(by_token)
        assert paused["paused"]["reason"] == "still here?"
    finally:
        by_cookie.close()
        by_token.close()


async def test_a_read_cookie_opens_no_other_service_that_shares_the_token(serve: Serve, tmp_path: Path) -> None:
    """Cookies ignore ports: a second service on this host receives the first one's cookie. With the same
    token, it must not take it, under either name, whatever Host the request names."""
    first = await serve(token=TOKEN, token_for_reads=True)
    (tmp_path / "second" / "data").mkdir(parents=True)
    second = await serve(
        token=TOKEN,
        token_for_reads=True,
        data_dir=tmp_path / "second" / "data",
        triggers_dir=tmp_path / "second" / "triggers",
    )
    name, value = await issued_read_cookie(first)
    as_first = {"Host": f"127.0.0.1:{first.client.port}", "Cookie": f"{name}={value}"}
    for headers in (as_first, forged(second, value)):
        for path in (STATUS, EVENTS):
            await expect_error(await second.client.get(path, headers=headers), 401, "not valid")
    await read_ok(first, STATUS)  # where it came from, it still reads


async def test_the_cookie_never_authorises_a_change(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True)
    before = await served.status()
    await issued_read_cookie(served)  # in the client's jar from here on, as in a browser
    await read_ok(served, STATUS)
    for path in (TRIGGER, CANCEL):
        response = await served.client.post(path)
        await expect_error(response, 401, "cookies are not accepted")
        response = await served.client.post(path, headers={"Cookie": f"snapshot_token={TOKEN}"})
        await expect_error(response, 401, "cookies are not accepted")
    await served.nothing_happened(before)


# ------------------------------------------------------------------------------------------ cross-site
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # sandboxed frames, file:// pages
        {"Origin": "http://127.0.0.1:1"},  # another port on this host: same site, another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},  # Origin wins
    ],
    ids=["evil", "null", "other-port", "sfs-cross-site", "sfs-same-site", "origin-beats-sfs"],
)
async def test_cross_site_changes_are_refused_and_queue_nothing(serve: Serve, headers: dict[str, str]) -> None:
    served = await serve(token=TOKEN)
    before = await served.status()
    for path in (TRIGGER, CANCEL):
        response = await served.client.post(path, headers={**headers, **bearer()}, json={"reason": "csrf"})
        await expect_error(response, 403, "cross-site")
        assert "Access-Control-Allow-Origin" not in response.headers
    await served.nothing_happened(before)


async def test_own_origin_and_plain_clients_are_not_cross_site(serve: Serve) -> None:
    served = await serve()
    for headers in (
        {},  # curl, scripts
        {"Origin": served.origin},
        {"Origin": served.origin.upper()},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
    ):
        response = await served.client.post(TRIGGER, headers=headers)
        assert response.status == 202, (headers, await response.text())


async def test_dns_rebinding_a_foreign_host_name_is_refused_on_loopback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 is "same-origin" to the browser: its
    requests carry ``Origin: http://evil.example:8001`` and ``Host: evil.example:8001``. Only the Host gives
    it away, so a loopback-only service answers to loopback names and --allow-origin hosts alone."""
    served = await serve(allow_origins=("https://snap.example.com",))
    before = await served.status()
    port = served.client.port
    for _ in range(3):
        evil = f"evil.example:{port}"
        response = await served.client.post(TRIGGER, headers={"Host": evil, "Origin": f"http://{evil}"})
        await expect_error(response, 403, "evil.example", "not a name of this service")
        await expect_error(await served.client.get(STATUS, headers={"Host": evil}), 403)
    await served.nothing_happened(before)
    assert sum("refusing requests for host 'evil.example'" in r.getMessage() for r in caplog.records) == 1
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "app.localhost", "snap.example.com"):
        response = await served.client.get(STATUS, headers={"Host": host})
        assert response.status == 200, (host, await response.text())


async def test_a_service_on_all_addresses_answers_any_host_name(serve: Serve) -> None:
    """Without --allowed-host, as before (the start-up warning names the risk: see the real process below)."""
    served = await serve(host="0.0.0.0", token=TOKEN)
    response = await served.client.get(STATUS, headers={"Host": "snapshots.internal:8001"})
    assert response.status == 200


@pytest.mark.parametrize("bound", ["0.0.0.0", "::", "192.0.2.10"])
async def test_allowed_hosts_refuse_other_names_whatever_the_address(serve: Serve, bound: str) -> None:
    """With --allowed-host, a rebinding page's "Host: evil.example" is refused on every request, the page and
    the reads included, whatever the service listens on. IP addresses are never refused: a rebinding page
    needs a DNS name of its own (its origin), and a browser that addressed an IP reached this service by it."""
    served = await serve(host=bound, allowed_hosts=("snap.example",), allow_origins=("https://dash.example.com",))
    before = await served.status()
    port = served.client.port
    evil = {"Host": f"evil.example:{port}"}
    for path in (STATUS, "/api/snapshot/runs", "/", "/app.js", "/health", "/metrics"):
        await expect_error(await served.client.get(path, headers=evil), 403, "evil.example", "not a name of this")
    for path in (TRIGGER, CANCEL):
        response = await served.client.post(path, headers={**evil, "Origin": f"http://evil.example:{port}"})
        await expect_error(response, 403, "--allowed-host")
    await served.nothing_happened(before)
    names = ("snap.example", "SNAP.example.", "localhost", "app.localhost", "127.0.0.1", "[::1]", "192.168.1.5")
    for host in (*names, "[2001:db8::7]", "dash.example.com"):
        response = await served.client.get(STATUS, headers={"Host": f"{host}:{port}"})
        assert response.status == 200, (host, await response.text())


async def test_allowed_origin_gets_cors_headers_and_preflight(serve: Serve) -> None:
    served = await serve(token=TOKEN, token_for_reads=True, allow_origins=(ALLOWED,))
    preflight = await served.client.options(
        TRIGGER,
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {"GET", "POST"} <= {m.strip() for m in preflight.headers["Access-Control-Allow-Methods"].split(",")}
    allowed_headers = preflight.headers["Access-Control-Allow-Headers"].lower()
    for name in ("authorization", "content-type", "idempotency-key", "last-event-id"):
        assert name in allowed_headers
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in preflight.headers["Vary"]

    response = await served.client.post(TRIGGER, headers={"Origin": ALLOWED, **bearer()})
    assert response.status == 202
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers["Vary"]
    await served.job.next_start()

    refused = await served.client.post(TRIGGER, headers={"Origin": ALLOWED})  # no token: still 401, readable
    await expect_error(refused, 401)
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
    assert "Idempotent-Replayed" in refused.headers["Access-Control-Expose-Headers"]  # a replayed trigger says so

    async with served.client.get(EVENTS, headers={"Origin": ALLOWED, **bearer()}) as stream:
        assert stream.status == 200
        assert stream.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert stream.headers["Access-Control-Allow-Credentials"] == "true"

    evil_read = await served.client.get(STATUS, headers={"Origin": "https://evil.example", **bearer()})
    assert evil_read.status == 200  # a read is harmless; without CORS headers the browser hides the answer
    assert "Access-Control-Allow-Origin" not in evil_read.headers
    assert "Origin" in evil_read.headers["Vary"]

    evil = await served.client.options(
        TRIGGER, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    await expect_error(evil, 403, "allow-origin")
    assert "Access-Control-Allow-Origin" not in evil.headers


# ---------------------------------------------------------------------------------- framing and policy
async def test_every_answer_forbids_framing_and_limits_what_the_page_may_load(serve: Serve) -> None:
    """The page, its files, the API, the stream and the errors: none may be framed by another page, and the
    page may load and run only what comes from the service."""
    served = await serve(token=TOKEN, token_for_reads=True)
    answers = [await served.client.get(path) for path in ("/", "/app.js", "/nope", STATUS)]
    answers.append(await served.client.get(STATUS, headers=bearer()))
    answers.append(await served.client.post(TRIGGER, headers={"Origin": "https://evil.example"}))
    async with served.client.get(EVENTS, headers=bearer()) as stream:
        answers.append(stream)
    for answer in answers:
        where = (answer.method, answer.url.path, answer.status)
        assert answer.headers["X-Frame-Options"] == "DENY", where
        policy = [d.strip() for d in answer.headers["Content-Security-Policy"].split(";")]
        assert "frame-ancestors 'none'" in policy, (where, policy)
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'"):
            assert directive in policy, (where, policy)
        assert answer.headers["X-Content-Type-Options"] == "nosniff", where
        assert answer.headers["Referrer-Policy"] == "no-referrer", where


async def test_named_frame_ancestors_may_frame_the_page(serve: Serve) -> None:
    served = await serve(frame_ancestors=("https://portal.example", "http://127.0.0.1:9000"))
    response = await served.client.get("/")
    policy = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
    assert "frame-ancestors https://portal.example http://127.0.0.1:9000" in policy, policy
    assert "X-Frame-Options" not in response.headers  # it cannot name an origin: DENY would win where it counts


# --------------------------------------------------------------------------------------------- abuse
async def test_bodies_over_the_cap_get_413_and_queue_nothing(serve: Serve) -> None:
    served = await serve(token=TOKEN)
    before = await served.status()
    too_big = json.dumps({"reason": "x" * MAX_BODY_BYTES}).encode()

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: only reading can tell the size
        for start in range(0, len(too_big), 4096):
            yield too_big[start : start + 4096]

    for body in (too_big, chunked()):
        response = await served.client.post(
            TRIGGER, data=body, headers={**bearer(), "Content-Type": "application/json"}
        )
        await expect_error(response, 413, str(MAX_BODY_BYTES))
    await served.nothing_happened(before)

    # Refused by its Content-Length alone, before a byte of it is read (the client never sends it) and before
    # the token is even looked at.
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(served.client.host, served.client.port)
        writer.write(f"POST {TRIGGER} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n".encode())
        status_line = await reader.readline()
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"413", status_line

    just_fits = b'{"reason": "' + b"y" * (MAX_BODY_BYTES - 14) + b'"}'
    assert len(just_fits) == MAX_BODY_BYTES
    response = await served.client.post(TRIGGER, data=just_fits, headers=bearer())
    assert response.status == 202, await response.text()


async def test_trigger_flood_gets_429_then_is_let_in_after_the_window(serve: Serve) -> None:
    served = await serve(token=TOKEN, trigger_limit=3)
    for _ in range(5):  # refused by auth: not counted
        await expect_error(await served.client.post(TRIGGER), 401)
    await expect_error(await served.client.post(TRIGGER, headers={"Origin": "https://evil.example", **bearer()}), 403)
    for _ in range(3):
        assert (await served.client.post(TRIGGER, headers=bearer())).status == 202
    await served.job.next_start()
    before = await served.status()

    response = await served.client.post(TRIGGER, headers=bearer())
    await expect_error(response, 429, "at most 3 a minute")
    assert response.headers["Retry-After"] == "60"
    served.clock.advance(timedelta(seconds=45))
    response = await served.client.post(TRIGGER, headers=bearer())
    await expect_error(response, 429)
    assert response.headers["Retry-After"] == "15"
    await served.nothing_happened(before)

    assert (await served.client.post(CANCEL, headers=bearer())).status == 202  # only triggers are limited
    served.clock.advance(timedelta(seconds=15))
    assert (await served.client.post(TRIGGER, headers=bearer())).status == 202


@pytest.mark.parametrize(
    "method, path, status, allow",
    [
        ("GET", "/nope", 404, None),
        ("GET", "/api/nope", 404, None),
        ("POST", "/nope", 404, None),  # unknown is unknown, whatever the method (and no token asked for)
        ("DELETE", "/api/snapshot/nope", 404, None),
        ("GET", "/sub", 404, None),  # a folder: never listed
        ("GET", "/sub/", 404, None),
        ("GET", TRIGGER, 405, "POST"),
        ("DELETE", TRIGGER, 405, "POST"),
        ("POST", STATUS, 405, "GET,HEAD"),
        ("PUT", "/", 405, "GET,HEAD"),
        ("POST", "/app.js", 405, "GET,HEAD"),
        ("OPTIONS", STATUS, 405, "GET,HEAD"),  # OPTIONS without CORS request headers is not a preflight
    ],
)
async def test_unknown_paths_and_wrong_methods_answer_json(
    serve: Serve, method: str, path: str, status: int, allow: str | None
) -> None:
    served = await serve(token=TOKEN)
    response = await served.client.request(method, path)
    body = await expect_error(response, status, path)
    assert response.headers.get("Allow") == allow
    if allow:
        assert allow.split(",")[0] in body["message"]


# ---------------------------------------------------------------------------------------------- static
async def raw_get(served: Served, target: str) -> tuple[int, str, bytes]:
    """GET ``target`` exactly as written (a client library would normalise ``..`` and decode first)."""
    host = f"{served.client.host}:{served.client.port}"
    return await raw_request(served, f"GET {target} HTTP/1.1\r\nHost: {host}".encode())


ESCAPES = [
    "/../secret.txt",
    "/../outside/secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/%252e%252e/secret.txt",  # double-encoded
    "/%252e%252e%252fsecret.txt",
    "/..%5csecret.txt",  # a backslash
    "/.hidden",
    "/leak.txt",  # a symlink inside the page folder pointing out of it
    "/linked/secret.txt",  # a symlinked folder pointing out of it
    "/sub/",
    "/sub",
    "/linked/",
]


async def test_static_files_never_leave_the_page_folder(serve: Serve, web_dir: Path, tmp_path: Path) -> None:
    served = await serve()
    escapes = [*ESCAPES, "/" + str(tmp_path / "secret.txt"), "//" + str(tmp_path / "secret.txt").lstrip("/")]
    escapes.append(f"http://{served.client.host}:{served.client.port}/../secret.txt")  # absolute-form target
    for target in escapes:
        status, content_type, body = await raw_get(served, target)
        assert SECRET.encode() not in body, target
        assert b"ok.txt" not in body, target  # no listing
        assert status == 404, (target, status, body[:200])
        assert content_type.startswith("application/json"), target
        assert json.loads(body)["success"] is False
    for target, expected in (("/", b"test page"), ("/sub/ok.txt", b"fine"), ("/alias.js", b"console.log")):
        status, _, body = await raw_get(served, target)
        assert (status, expected in body) == (200, True), target

    # A file replaced by a symlink after start-up is checked again when served.
    (web_dir / "app.js").unlink()
    (web_dir / "app.js").symlink_to(tmp_path / "secret.txt")
    status, _, body = await raw_get(served, "/app.js")
    assert status == 404 and SECRET.encode() not in body
    (web_dir / "app.js").unlink()
    os.mkfifo(web_dir / "app.js")  # a FIFO would block a reader forever
    status, _, _ = await raw_get(served, "/app.js")
    assert status == 404


# ------------------------------------------------------------------------------------ a real process
def _post(service: ServiceProcess, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(service.url + path, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def _get(service: ServiceProcess, path: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """GET ``path``: the status and the ``Set-Cookie`` headers of the answer."""
    request = urllib.request.Request(service.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as error:
        error.close()
        return error.code, error.headers.get_all("Set-Cookie") or []


@pytest.mark.process
def test_a_restart_invalidates_every_read_cookie(tmp_path: Path) -> None:
    """The cookie's key is made at start: a cookie from before a restart opens nothing after it."""
    args = ("--command", "true", "--interval", "600", "--token-for-reads")
    service = start_service(tmp_path, *args, env={"SNAPSHOT_TOKEN": TOKEN})
    try:
        service.wait_ready()
        status, cookies = _get(service, STATUS, bearer())
        assert status == 200 and len(cookies) == 1, cookies
        cookie = cookies[0].split(";")[0]
        assert _get(service, STATUS, {"Cookie": cookie})[0] == 200
    finally:
        assert service.stop() == 0
    again = start_service(tmp_path, *args, env={"SNAPSHOT_TOKEN": TOKEN}, port=service.port)
    try:
        again.wait_ready()
        assert _get(again, STATUS, {"Cookie": cookie})[0] == 401
        status, cookies = _get(again, STATUS, bearer())
        assert status == 200 and cookies[0].split(";")[0] != cookie
    finally:
        assert again.stop() == 0


def _request(service: ServiceProcess, method: str, path: str, host: str) -> int:
    """``method path`` over a real socket with a ``Host`` header of our choosing (a rebinding page's)."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", f"{host}:{service.port}")
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.process
def test_a_service_on_all_addresses_with_allowed_hosts_refuses_a_rebinding_page(tmp_path: Path) -> None:
    """A real process bound to 0.0.0.0 (as in the Docker image) without a token: a page on evil.example
    rebound to this machine gets 403 for every read and every change; its own names still work."""
    args = ("--host", "0.0.0.0", "--command", "true", "--interval", "600")
    service = start_service(tmp_path, *args, "--allowed-host", "snap.example", env={"SNAPSHOT_TOKEN": ""})
    try:
        service.wait_ready()
        assert "DNS rebinding" not in service.logs()
        reads = ("/", STATUS, "/api/snapshot/runs", "/api/snapshot/runs/x/log", "/metrics")
        for path in reads:
            assert _request(service, "GET", path, "evil.example") == 403, path
        for path in (TRIGGER, CANCEL, "/api/snapshot/pause"):
            assert _request(service, "POST", path, "evil.example") == 403, path
        assert service.get_json(STATUS)["paused"] is None
        for host in ("snap.example", "localhost", "127.0.0.1", "10.1.2.3"):
            assert _request(service, "GET", STATUS, host) == 200, host
        assert _request(service, "POST", TRIGGER, "snap.example") == 202
    finally:
        assert service.stop() == 0
    assert service.logs().count("refusing requests for host 'evil.example'") == 1


@pytest.mark.process
def test_a_service_on_all_addresses_without_allowed_hosts_warns_of_rebinding(tmp_path: Path) -> None:
    """Without --allowed-host it still answers any name (so existing deployments keep working), and says why
    that is a risk, once, at start."""
    service = start_service(tmp_path, "--host", "0.0.0.0", "--command", "true", env={"SNAPSHOT_TOKEN": TOKEN})
    try:
        service.wait_for_log("DNS rebinding")
        service.wait_ready()
        assert "SNAPSHOT_ALLOWED_HOSTS" in service.logs()
        assert _request(service, "GET", STATUS, "evil.example") == 200
    finally:
        assert service.stop() == 0


@pytest.mark.process
def test_a_public_address_without_a_token_is_warned_about_loudly(tmp_path: Path) -> None:
    service = start_service(tmp_path, "--host", "0.0.0.0", "--command", "true", env={"SNAPSHOT_TOKEN": ""})
    try:
        service.wait_for_log("WITHOUT A TOKEN")
        service.wait_ready()
    finally:
        assert service.stop() == 0


@pytest.mark.process
def test_a_real_service_with_a_token(tmp_path: Path) -> None:
    service = start_service(tmp_path, "--host", "0.0.0.0", "--command", "true", env={"SNAPSHOT_TOKEN": TOKEN})
    try:
        service.wait_ready()
        assert "WITHOUT A TOKEN" not in service.logs()
        assert _post(service, TRIGGER, {}) == 401
        assert _post(service, TRIGGER, {"Origin": "https://evil.example", **bearer()}) == 403
        assert _post(service, TRIGGER, bearer()) == 202
    finally:
        assert service.stop() == 0


# ------------------------------------------------------------------------------------ hostile Host headers
async def raw_request(served: Served, head: bytes) -> tuple[int, str, bytes]:
    """Send ``head`` (request line and headers, CRLF-separated, no final blank line) as it is."""
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(served.client.host, served.client.port)
        writer.write(head + b"\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
    first, _, body = data.partition(b"\r\n\r\n")
    lines = first.decode("latin-1").split("\r\n")
    content_type = next(
        (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type")), ""
    )
    return int(lines[0].split()[1]), content_type, body


BAD_HOSTS = [b"localhost:99999", b"localhost:abc", b"ev\xefl.example", b"[::1", b"localhost:0"]


@pytest.mark.parametrize("bound", ["127.0.0.1", "0.0.0.0"])
async def test_a_malformed_host_is_a_json_400_never_a_500(
    serve: Serve, bound: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp raises (``Port out of range``, an IDNA error) when ``request.url`` is first asked for: the
    guard's Host check and the read cookie's port asked, and each such request was a 500 with a traceback."""
    served = await serve(host=bound, token=TOKEN)
    auth = f"Authorization: Bearer {TOKEN}".encode()
    for host in BAD_HOSTS:
        for target, extra in ((b"GET /api/snapshot/status", b""), (b"GET /", b""), (b"GET /api/snapshot/status", auth)):
            head = target + b" HTTP/1.1\r\nHost: " + host + (b"\r\n" + extra if extra else b"")
            status, content_type, body = await raw_request(served, head)
            assert (status, content_type.split(";")[0]) == (400, "application/json"), (host, target, body)
            assert b"Host header" in body
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --------------------------------------------------------------------------------- cookies another page set
async def test_forged_read_cookies_are_no_guesses_and_one_valid_value_among_them_is_enough(serve: Serve) -> None:
    """Cookies ignore ports: a page on another port of this host (or a sibling subdomain, for the parent
    domain) can set ``snapshot_read_<port>`` in the visitor's browser, which then sends it with ours. Counted as
    guesses, 20 of them locked the visitor's address out of its own token (429) for a minute."""
    served = await serve(token=TOKEN, token_for_reads=True)
    _, value = await issued_read_cookie(served)
    served.client.session.cookie_jar.clear()
    name = f"snapshot_read_{served.client.port}"
    for _ in range(GUESSES_PER_MINUTE + 5):
        await expect_error(await served.client.get(STATUS, headers={"Cookie": f"{name}=planted"}), 401, "not valid")
    await read_ok(served, STATUS, bearer())
    response = await served.client.post(TRIGGER, headers=bearer())
    assert response.status == 202, await response.text()
    # The browser sends both the planted cookie and ours, in either order: ours counts.
    for cookie in (f"{name}=planted; {name}={value}", f"{name}={value}; {name}=planted"):
        await read_ok(served, STATUS, {"Cookie": cookie})


async def test_foreign_hosts_are_said_once_a_minute_with_a_count(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve()
    evil = {"Host": f"evil.example:{served.client.port}"}
    for _ in range(3):
        await expect_error(await served.client.get(STATUS, headers=evil), 403)
    served.clock.advance(timedelta(seconds=61))
    await expect_error(await served.client.get(STATUS, headers=evil), 403)
    said = [r.getMessage() for r in caplog.records if "refusing requests for host" in r.getMessage()]
    assert len(said) == 2 and "2 more refused" in said[1], said


@pytest.mark.parametrize("trusted", [True, False], ids=["from-a-trusted-proxy", "from-anyone"])
async def test_the_read_cookie_is_secure_behind_a_trusted_tls_proxy(serve: Serve, trusted: bool) -> None:
    """A proxy in front that terminates TLS says so in X-Forwarded-Proto; the service sees plain HTTP. Without
    ``Secure``, a cookie of a page served over https could also go out in clear to http:// on this host. Only
    a --trusted-proxy is believed: anyone can send the header."""
    proxies = (ipaddress.ip_network("127.0.0.1"),) if trusted else ()
    served = await serve(token=TOKEN, token_for_reads=True, trusted_proxies=proxies)
    from_proxy = {**bearer(), "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    response = await served.client.get(STATUS, headers=from_proxy)
    assert response.status == 200
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("snapshot_read_"))
    assert ("Secure" in cookie.split("; ")) is trusted, cookie
