"""Fault: a client floods the service with malformed requests. aiohttp answers each with a 400 itself, but
logged each at ERROR with a traceback (about 600 KiB/s of log from one client); now one line per spell."""

from __future__ import annotations

import logging
import socket
from typing import Any

from orchestrator.httplog import SPELL_SECONDS, MalformedRequests
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


def test_a_flood_of_malformed_requests_is_one_log_line(service_factory: Any) -> None:
    service: ServiceProcess = service_factory("--command", "true", "--interval", "60")
    answers = {ask(service.port, BAD[n % len(BAD)]) for n in range(300)}
    assert answers == {b"HTTP/1.0 400 Bad Request"}
    assert service.get_json("/health")["status"] == "ok"
    service.wait_for_log("malformed HTTP request")
    assert service.stop() == 0
    log = service.logs()
    assert log.count("malformed HTTP request") == 1, log[-3000:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
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
