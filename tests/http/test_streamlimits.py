"""Who may open one more stream (orchestrator/http/streamlimits.py): totals, the room kept for the token, the caps
per client address and per network, by credential, and one log line per spell of time. Pure: no sockets."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from orchestrator.http.streamlimits import (
    Credential,
    Refusal,
    Room,
    Seat,
    StreamKind,
    kept_for_bearer,
    reserved_for_token,
)
from tests.fakes import T0

NONE, COOKIE, BEARER = Credential.NONE, Credential.COOKIE, Credential.BEARER


@pytest.mark.parametrize(
    ("limit", "reserved"), [(0, 0), (1, 0), (2, 1), (3, 1), (10, 1), (11, 2), (20, 2), (2000, 200)]
)
def test_a_tenth_is_kept_for_the_token_but_never_all(limit: int, reserved: int) -> None:
    assert reserved_for_token(limit) == reserved


@pytest.mark.parametrize(("reserved", "bearer_only"), [(0, 0), (1, 1), (2, 1), (3, 2), (5, 3), (200, 100)])
def test_the_larger_half_of_the_reserve_is_kept_from_the_cookie(reserved: int, bearer_only: int) -> None:
    assert kept_for_bearer(reserved) == bearer_only


def statuses(
    room: Room, key: str, count: int, credential: Credential = NONE, *, network: str | None = None, seconds: float = 0
) -> list[int]:
    now = T0 + timedelta(seconds=seconds)
    answers = (room.admit(key, credential, now, network=network) for _ in range(count))
    return [200 if isinstance(a, Seat) else a.status for a in answers]


def test_the_cap_is_per_address_and_the_total_for_all() -> None:
    room = Room(StreamKind.EVENTS, limit=5, per_client=2, has_token=False)
    assert statuses(room, "a", 3) == [200, 200, 429]
    assert statuses(room, "b", 3) == [200, 200, 429]
    assert statuses(room, "c", 2) == [200, 503]
    assert room.open == 5


@pytest.mark.parametrize(
    ("limit", "ceilings"),
    [
        # (anonymous, read cookie, bearer token)
        (2, (1, 1, 2)),
        (10, (9, 9, 10)),
        (20, (18, 19, 20)),
        (50, (45, 47, 50)),
        (2000, (1800, 1900, 2000)),
    ],
)
def test_each_credential_has_its_ceiling_and_the_bearer_token_always_keeps_room(
    limit: int, ceilings: tuple[int, int, int]
) -> None:
    room = Room(StreamKind.EVENTS, limit=limit, per_client=0, has_token=True)
    assert (room.ceiling(NONE), room.ceiling(COOKIE), room.ceiling(BEARER)) == ceilings
    assert room.ceiling(COOKIE) < limit, "a request with the bearer token always finds a stream kept for it"
    untokened = Room(StreamKind.EVENTS, limit=limit, per_client=0, has_token=False)
    assert {untokened.ceiling(c) for c in Credential} == {limit}


# Each row: what one address asks for, in order, and what it gets; a room of 50 (5 kept from anonymous
# streams, 3 of them from the cookie too), 5 a client.
@pytest.mark.parametrize(
    ("asks", "expected"),
    [
        # The cookie is capped per address like anonymous streams, but counted apart from them.
        ([(COOKIE, 7)], [200] * 5 + [429] * 2),
        ([(NONE, 5), (COOKIE, 6)], [200] * 5 + [200] * 5 + [429]),
        # The bearer token is not capped by address.
        ([(NONE, 5), (BEARER, 8)], [200] * 5 + [200] * 8),
        # One address with a cookie gets its cap, not 50 streams that leave the operator a 503.
        ([(COOKIE, 55), (BEARER, 1)], [200] * 5 + [429] * 50 + [200]),
    ],
)
def test_what_one_address_gets_by_credential(asks: list[tuple[Credential, int]], expected: list[int]) -> None:
    room = Room(StreamKind.EVENTS, limit=50, per_client=5, has_token=True)
    got = [status for credential, count in asks for status in statuses(room, "a", count, credential)]
    assert got == expected


def test_cookie_streams_from_many_addresses_leave_the_bearer_token_its_room() -> None:
    room = Room(StreamKind.EVENTS, limit=50, per_client=5, has_token=True)
    got = [s for n in range(11) for s in statuses(room, f"10.0.0.{n}", 5, COOKIE)]
    assert got.count(200) == 47 and set(got[47:]) == {503}
    refusal = room.admit("10.0.1.1", COOKIE, T0)
    assert isinstance(refusal, Refusal) and "47 with the read cookie" in refusal.message, refusal
    assert statuses(room, "operator", 4, BEARER) == [200, 200, 200, 503]
    assert statuses(room, "someone", 1) == [503]


def test_streams_with_the_token_use_the_kept_room_and_no_cap() -> None:
    room = Room(StreamKind.LOG, limit=10, per_client=3, has_token=True)
    assert (room.reserved, room.anonymous_limit) == (1, 9)
    for key in "abc":
        assert statuses(room, key, 3) == [200, 200, 200]
    assert statuses(room, "d", 1) == [503]
    refusal = room.admit("d", NONE, T0)
    assert isinstance(refusal, Refusal) and "without the token" in refusal.message
    assert statuses(room, "d", 1, COOKIE) == [503], "the one kept stream is the bearer token's"
    assert statuses(room, "a", 1, BEARER) == [200]  # over a's cap, into the kept room
    assert statuses(room, "a", 1, BEARER) == [503]


@pytest.mark.parametrize(
    ("asks", "expected"),
    [
        # Five /64s of one /56, 2 streams each; the /56 may hold 4 x 2 together.
        ([("2001:db8:0:1::/64", 2), ("2001:db8:0:2::/64", 2), ("2001:db8:0:3::/64", 2)], [200] * 6),
        (
            [(f"2001:db8:0:{n}::/64", 3) for n in range(1, 6)],
            [200, 200, 429] * 4 + [429] * 3,
        ),
    ],
)
def test_the_64s_of_one_56_share_a_wider_cap(asks: list[tuple[str, int]], expected: list[int]) -> None:
    room = Room(StreamKind.EVENTS, limit=100, per_client=2, has_token=False)
    assert room.per_network == 8
    got = [s for key, count in asks for s in statuses(room, key, count, network="2001:db8::/56")]
    assert got == expected
    assert statuses(room, "2001:db8:0:100::/64", 2, network="2001:db8:0:100::/56") == [200, 200], "another /56"


def test_a_network_refusal_names_the_network() -> None:
    room = Room(StreamKind.EVENTS, limit=100, per_client=1, has_token=True)
    for n in range(4):
        assert statuses(room, f"2001:db8:0:{n}::/64", 1, network="2001:db8::/56") == [200]
    refusal = room.admit("2001:db8:0:9::/64", NONE, T0, network="2001:db8::/56")
    assert isinstance(refusal, Refusal) and refusal.status == 429
    assert "from your network (4)" in refusal.message, refusal
    assert statuses(room, "2001:db8:0:9::/64", 1, COOKIE, network="2001:db8::/56") == [200], "counted apart"


def test_a_seat_given_back_makes_room_again() -> None:
    room = Room(StreamKind.EVENTS, limit=2, per_client=1, has_token=False)
    seat = room.admit("a", NONE, T0, network="n")
    assert isinstance(seat, Seat)
    assert statuses(room, "a", 1) == [429]
    room.release(seat)
    assert room.open == 0 and room.held_by("a") == 0 and room.held_by("n") == 0
    assert statuses(room, "a", 1) == [200]


def test_no_cap_per_client_when_it_is_zero() -> None:
    room = Room(StreamKind.EVENTS, limit=50, per_client=0, has_token=False)
    assert set(statuses(room, "a", 50, network="n")) == {200}
    assert statuses(room, "a", 1) == [503]


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_refusals_are_logged_once_per_minute_whatever_else_happens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.http.streamlimits")
    room = Room(StreamKind.EVENTS, limit=3, per_client=2, has_token=False)
    seats = [room.admit("a", NONE, T0) for _ in range(2)]
    statuses(room, "a", 5)
    # Closing one and opening another is the same spell, and so is a client that left and came back.
    first = seats.pop()
    assert isinstance(first, Seat)
    room.release(first)
    assert statuses(room, "a", 2, seconds=10) == [200, 429]
    capped = messages(caplog, "the most one address may")
    assert len(capped) == 1 and capped[0].startswith("client a holds 2 event streams"), capped

    statuses(room, "b", 3, seconds=20)  # b takes the last stream, then the room is full
    full = messages(caplog, "the most allowed")
    assert full == ["3 event streams open, the most allowed: refusing more with 503 until some close"]

    statuses(room, "b", 1, seconds=81)  # a minute on: said again, with what was held
    assert messages(caplog, "the most allowed")[1:] == [
        "3 event streams open, the most allowed: refusing more with 503 until some close (and 1 more refused "
        "since the last such line, most from b (1))"
    ]
    assert statuses(room, "a", 1, seconds=82) == [503]
    assert len(messages(caplog, "the most one address may")) == 1


def test_churn_at_the_full_room_is_a_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    # Before: the spell of a full room ended whenever a stream was let in, so clients that kept closing one and
    # opening two wrote a warning line for nearly every stream (1,184 lines in 10 s).
    caplog.set_level(logging.WARNING, logger="orchestrator.http.streamlimits")
    room = Room(StreamKind.EVENTS, limit=50, per_client=5, has_token=True)
    seats = [room.admit(f"10.0.0.{n}", NONE, T0) for n in range(45)]
    for step in range(1200):
        now = T0 + timedelta(seconds=step / 120)  # 1,200 rounds in 10 s
        seat = seats.pop(0)
        assert isinstance(seat, Seat)
        room.release(seat)
        seats.append(room.admit(seat.key, NONE, now))
        assert isinstance(room.admit(f"10.0.1.{step % 200}", NONE, now), Refusal)
    assert len(messages(caplog, "streams open, the most allowed")) == 1
