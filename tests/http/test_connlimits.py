"""The connection caps, alone: admission by address and in all, and one log line per spell."""

from __future__ import annotations

import logging
import socket
from datetime import datetime, timedelta

import pytest

from orchestrator.cli.values import parse_trusted_proxies
from orchestrator.config import default_max_streams, max_log_streams
from orchestrator.http.clientaddr import TrustedProxies
from orchestrator.http.connlimits import (
    ConnectionGate,
    ConnectionLimits,
    Ticket,
    derived_total,
    gated,
    limits_for,
)
from tests.fakes import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def gate(total: int, per_client: int, trusted: TrustedProxies | None = None) -> tuple[ConnectionGate, Clock]:
    clock = Clock()
    return ConnectionGate(ConnectionLimits(total, per_client), trusted or TrustedProxies(), clock=clock), clock


@pytest.mark.parametrize(
    ("descriptors", "total"),
    [(None, 0), (100, 36), (128, 64), (256, 192), (1024, 896), (65536, 57344)],
)
def test_the_total_keeps_room_below_the_descriptor_limit(descriptors: int | None, total: int) -> None:
    assert derived_total(descriptors) == total


@pytest.mark.parametrize(
    ("descriptors", "streams", "log_streams"),
    [(100, 21, 5), (1024, 537, 134), (20000, 10500, 2625), (65536, 34406, 8601), (524288, 275251, 68812)],
)
def test_the_streams_allowed_by_default_leave_a_quarter_of_the_connections_for_other_requests(
    descriptors: int, streams: int, log_streams: int
) -> None:
    assert (default_max_streams(descriptors), max_log_streams(streams)) == (streams, log_streams)
    assert streams + log_streams <= derived_total(descriptors) * 3 // 4


def test_one_address_never_gets_more_than_half_the_total() -> None:
    assert limits_for(256, 896) == ConnectionLimits(896, 256)
    assert limits_for(256, 192) == ConnectionLimits(192, 96)
    assert limits_for(0, 192) == ConnectionLimits(192, 0)  # no cap by address, as asked
    assert limits_for(10, 0) == ConnectionLimits(0, 10)


def test_a_client_over_its_cap_is_refused_and_others_still_get_in() -> None:
    connections, _ = gate(total=10, per_client=3)
    tickets = [connections.admit(("192.0.2.1", 1000 + n)) for n in range(3)]
    assert all(isinstance(t, Ticket) for t in tickets)
    assert connections.admit(("192.0.2.1", 2000)) is None
    assert connections.admit(("192.0.2.2", 1000)) is not None
    first = tickets[0]
    assert first is not None
    connections.release(first)
    assert connections.admit(("192.0.2.1", 3000)) is not None
    assert (connections.open, connections.from_client("192.0.2.1")) == (4, 3)


def test_ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    connections, _ = gate(total=10, per_client=2)
    assert connections.admit(("2001:db8:1:2::5", 1, 0, 0)) is not None
    assert connections.admit(("2001:db8:1:2::6", 1, 0, 0)) is not None
    assert connections.admit(("2001:db8:1:2::7", 1, 0, 0)) is None
    assert connections.admit(("2001:db8:1:3::7", 1, 0, 0)) is not None
    assert connections.admit(("::ffff:192.0.2.1", 1, 0, 0)) is not None
    assert connections.from_client("192.0.2.1") == 1


def test_a_trusted_proxy_is_capped_only_by_the_total() -> None:
    connections, _ = gate(total=5, per_client=2, trusted=TrustedProxies(parse_trusted_proxies("10.0.0.5")))
    assert [connections.admit(("10.0.0.5", n)) is not None for n in range(6)] == [True] * 5 + [False]


def test_refusals_are_logged_once_per_spell_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    connections, clock = gate(total=4, per_client=2)
    for n in range(2):
        connections.admit(("192.0.2.1", n))
    for n in range(50):
        assert connections.admit(("192.0.2.1", 100 + n)) is None
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "client 192.0.2.1 holds 2 connections" in lines[0], lines

    tickets = [connections.admit(("192.0.2.2", n)) for n in range(2)]
    assert connections.admit(("192.0.2.3", 1)) is None  # the total: a spell of its own
    assert connections.admit(("192.0.2.3", 2)) is None  # in that spell: counted
    clock.now = T0 + timedelta(minutes=1)
    released = tickets.pop()
    assert released is not None
    connections.release(released)
    assert connections.admit(("192.0.2.1", 200)) is None  # the next spells' first lines say what was held
    assert connections.admit(("192.0.2.4", 1)) is not None
    assert connections.admit(("192.0.2.5", 1)) is None
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 4, lines
    assert "4 connections open, the most allowed" in lines[1]
    assert "client 192.0.2.1 holds 2 connections" in lines[2]
    assert "(and 49 more refused since the last such line, most from 192.0.2.1 (49))" in lines[2], lines[2]
    assert "(and 1 more refused since the last such line, most from 192.0.2.3 (1))" in lines[3], lines[3]


def test_the_listening_socket_closes_refused_connections_as_it_accepts_them() -> None:
    connections, _ = gate(total=10, per_client=1)
    with socket.create_server(("127.0.0.1", 0)) as plain:
        listener = gated(plain, connections)
        port = listener.getsockname()[1]
        first = socket.create_connection(("127.0.0.1", port))
        second = socket.create_connection(("127.0.0.1", port))
        try:
            admitted, _ = listener.accept()
            assert connections.open == 1
            with pytest.raises(BlockingIOError):  # the second is over the cap: closed, and nothing else waits
                listener.accept()
            second.settimeout(5)
            assert second.recv(1) == b""  # closed by the service, before anything was read
            admitted.close()
            admitted.close()  # once only
            assert connections.open == 0
        finally:
            first.close()
            second.close()
            listener.close()
