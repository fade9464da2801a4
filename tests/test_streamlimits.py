"""Who may open one more stream (orchestrator/streamlimits.py): totals, the room kept for the token, the cap
per client address, and one log line per spell. Pure: no sockets."""

from __future__ import annotations

import logging

import pytest

from orchestrator.streamlimits import Refusal, Room, Seat, StreamKind, reserved_for_token


@pytest.mark.parametrize(
    ("limit", "reserved"), [(0, 0), (1, 0), (2, 1), (3, 1), (10, 1), (11, 2), (20, 2), (2000, 200)]
)
def test_a_tenth_is_kept_for_the_token_but_never_all(limit: int, reserved: int) -> None:
    assert reserved_for_token(limit) == reserved


def statuses(room: Room, key: str, count: int, *, anonymous: bool = True) -> list[int]:
    return [
        200 if isinstance(r, Seat) else r.status for r in (room.admit(key, anonymous=anonymous) for _ in range(count))
    ]


def test_the_cap_is_per_address_and_the_total_for_all() -> None:
    room = Room(StreamKind.EVENTS, limit=5, per_client=2, has_token=False)
    assert statuses(room, "a", 3) == [200, 200, 429]
    assert statuses(room, "b", 3) == [200, 200, 429]
    assert statuses(room, "c", 2) == [200, 503]
    assert room.open == 5


def test_streams_with_the_token_use_the_kept_room_and_no_cap() -> None:
    room = Room(StreamKind.LOG, limit=10, per_client=3, has_token=True)
    assert (room.reserved, room.anonymous_limit) == (1, 9)
    for key in "abc":
        assert statuses(room, key, 3) == [200, 200, 200]
    assert statuses(room, "d", 1) == [503]
    refusal = room.admit("d", anonymous=True)
    assert isinstance(refusal, Refusal) and "without the token" in refusal.message
    assert statuses(room, "a", 1, anonymous=False) == [200]  # over a's cap, into the kept room
    assert statuses(room, "a", 1, anonymous=False) == [503]


def test_a_seat_given_back_makes_room_again() -> None:
    room = Room(StreamKind.EVENTS, limit=2, per_client=1, has_token=False)
    seat = room.admit("a", anonymous=True)
    assert isinstance(seat, Seat)
    assert statuses(room, "a", 1) == [429]
    room.release(seat)
    assert room.open == 0 and room.anonymous_from("a") == 0
    assert statuses(room, "a", 1) == [200]


def test_no_cap_per_client_when_it_is_zero() -> None:
    room = Room(StreamKind.EVENTS, limit=50, per_client=0, has_token=False)
    assert set(statuses(room, "a", 50)) == {200}
    assert statuses(room, "a", 1) == [503]


def test_refusals_are_logged_once_per_spell(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.streamlimits")
    room = Room(StreamKind.EVENTS, limit=3, per_client=2, has_token=False)
    seats = [room.admit("a", anonymous=True) for _ in range(2)]
    statuses(room, "a", 5)
    # Closing one and opening another is the same spell; only a client that left for good starts a new one.
    first = seats.pop()
    assert isinstance(first, Seat)
    room.release(first)
    assert statuses(room, "a", 2) == [200, 429]
    capped = [r.getMessage() for r in caplog.records if "the most one address may" in r.getMessage()]
    assert len(capped) == 1 and capped[0].startswith("client a holds 2 event streams"), capped

    statuses(room, "b", 3)  # b takes the last stream, then the room is full
    full = [r.getMessage() for r in caplog.records if "the most allowed" in r.getMessage()]
    assert full == ["3 event streams open, the most allowed: refusing more with 503 until some close"]
