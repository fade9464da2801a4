"""Fault: a client floods the service with malformed requests. aiohttp answers each with a 400 itself, and would
log each at ERROR with a traceback (about 600 KiB/s of log from one client); the service logs one line per spell."""

from __future__ import annotations

import http.client
import logging
import socket
from collections import Counter
from typing import Any

import aiohttp
import pytest

from orchestrator.http.accesslog import SPELL_SECONDS, MalformedRequests
from orchestrator.http.guesses import GUESSES_PER_MINUTE
from tests.support import ServiceProcess

BAD = [
    b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX: \x01\x02\r\n\r\n",
    b"GARBAGE\r\n\r\n",
]


def ask(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(200).split(b"\r\n", 1)[0]


@pytest.mark.process
def test_a_flood_of_malformed_requests_is_one_log_line(service_factory: Any) -> None:
    service: ServiceProcess = service_factory("--command", "true", "--interval", "60")
    answers = {ask(service.port, BAD[n % len(BAD)]) for n in range(300)}
    assert answers == {b"HTTP/1.0 400 Bad Request"}
    assert service.get_json("/health")["status"] == "ok"
    service.wait_for_log("malformed HTTP request")
    assert service.stop() == 0
    log = service.logs()
    assert log.count("malformed HTTP request") == 1, log[-3000:]
    # (Only aiohttp's lines: watchdog may log an unrelated error of its own as its observer stops.)
    assert "BadHttpMessage" not in log and "ERROR   aiohttp" not in log, log[-3000:]
    [line] = [line for line in log.splitlines() if "malformed HTTP request" in line]
    assert "WARNING aiohttp.server" in line and "127.0.0.1" in line and "Invalid header token" in line, line


def record(exc: BaseException | None) -> logging.LogRecord:
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, "x", 1, "Error handling request from %s", ("127.0.0.1",),
        (type(exc), exc, None) if exc else None,
    )  # fmt: skip


def test_malformed_requests_are_said_once_per_spell_and_counted() -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    now = [0.0]
    spell = MalformedRequests(clock=lambda: now[0])
    said = []
    # (seconds since start, whether the line is logged)
    for at, logged in [(0, True), (1, False), (30, False), (SPELL_SECONDS - 0.1, False), (SPELL_SECONDS, True)]:
        now[0] = at
        rec = record(BadHttpMessage("Invalid header token"))
        assert spell.filter(rec) is logged, at
        if logged:
            said.append(rec.getMessage())
            assert rec.levelno == logging.WARNING and rec.exc_info is None
    assert "3 more in the last spell" in said[1], said
    other = record(RuntimeError("a real bug"))
    assert spell.filter(other) and other.exc_info is not None, "anything else is logged as aiohttp logs it"


@pytest.mark.process
async def test_token_guessing_is_logged_once_and_answered_429(service_factory: Any) -> None:
    """12,000 wrong tokens in 5 s leave one line (and a count), and a client that keeps guessing gets 429 before
    any comparison, while the right token from another client works."""
    service: ServiceProcess = service_factory(
        "--command", "true", "--interval", "60", env={"SNAPSHOT_TOKEN": "s3cret-token"}
    )
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        for n in range(300):
            headers = {"Authorization": f"Bearer guess-{n}"}
            async with session.post(service.url + "/api/snapshot/trigger", headers=headers) as answer:
                statuses[answer.status] += 1
                if answer.status == 429:
                    assert int(answer.headers["Retry-After"]) >= 1
        assert statuses == {401: GUESSES_PER_MINUTE, 429: 300 - GUESSES_PER_MINUTE}, statuses
    # Another client: the service listens on 127.0.0.1 only, so it comes from another source address.
    other = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10, source_address=("127.0.0.2", 0))
    try:
        other.request("POST", "/api/snapshot/trigger", headers={"Authorization": "Bearer s3cret-token"})
        assert other.getresponse().status == 202
    finally:
        other.close()
    log = service.logs()
    assert log.count("refused a wrong token") == 1, log[-2000:]
    assert "guess-" not in log, "a guessed token is never logged"
