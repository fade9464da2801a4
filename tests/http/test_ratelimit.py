"""The trigger rate limit as a table: (seconds since start, expected answer), no sleeping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.http.ratelimit import ALLOWED, Admission, SlidingWindowLimit
from tests.fakes import T0


def refused(seconds: int) -> Admission:
    return Admission(allowed=False, retry_after=seconds)


CASES: dict[str, tuple[int, list[tuple[float, Admission]]]] = {
    "under the limit": (3, [(0, ALLOWED), (1, ALLOWED), (2, ALLOWED)]),
    "the fourth in a minute waits for the first to leave": (
        3,
        [(0, ALLOWED), (10, ALLOWED), (20, ALLOWED), (30, refused(30)), (59.2, refused(1)), (60, ALLOWED)],
    ),
    "retry-after is whole seconds, rounded up": (1, [(0, ALLOWED), (0.5, refused(60)), (58.01, refused(2))]),
    "never less than one second": (1, [(0, ALLOWED), (59.999, refused(1)), (60, ALLOWED)]),
    "refusals are not counted": (
        2,
        [(0, ALLOWED), (1, ALLOWED)] + [(2 + i / 10, refused(58)) for i in range(9)] + [(60, ALLOWED), (61, ALLOWED)],
    ),
    "the window slides, it does not reset": (
        2,
        [(0, ALLOWED), (50, ALLOWED), (60, ALLOWED), (61, refused(49)), (110, ALLOWED), (111, refused(9))],
    ),
    "a burst at one instant": (2, [(5, ALLOWED), (5, ALLOWED), (5, refused(60)), (65, ALLOWED), (65, ALLOWED)]),
    "zero means no limit": (0, [(0, ALLOWED)] * 1000),
    "a clock set back forgets the history instead of refusing for hours": (
        1,
        [(7200, ALLOWED), (7201, refused(59)), (0, ALLOWED), (1, refused(59))],
    ),
}


@pytest.mark.parametrize("limit, steps", CASES.values(), ids=CASES.keys())
def test_sliding_window(limit: int, steps: list[tuple[float, Admission]]) -> None:
    limiter = SlidingWindowLimit(limit)
    got = [(at, limiter.admit(T0 + timedelta(seconds=at))) for at, _ in steps]
    assert got == steps


def test_memory_is_bounded_by_the_limit() -> None:
    limiter = SlidingWindowLimit(5)
    for i in range(10_000):
        limiter.admit(T0 + timedelta(milliseconds=i))
    assert len(limiter._admitted) == 5


@pytest.mark.parametrize("limit, window", [(-1, timedelta(minutes=1)), (3, timedelta(0))])
def test_nonsense_is_refused(limit: int, window: timedelta) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimit(limit, window)
