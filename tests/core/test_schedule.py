"""The schedule is pure: a table of (last run, cooldown end, now) -> next due time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.schedule import Schedule, minutes_until

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
M = timedelta(minutes=1)
SCHEDULE = Schedule(interval=30 * M, cooldown=5 * M)


@pytest.mark.parametrize(
    ("last_run_at", "not_before", "now", "expected", "why"),
    [
        (None, None, T0, T0, "no run on record: due at once"),
        (None, T0 + 3 * M, T0, T0 + 3 * M, "a cooldown still applies before any run is recorded"),
        (T0, None, T0 + 1 * M, T0 + 30 * M, "one interval after the last run started"),
        (T0, None, T0 + 29 * M, T0 + 30 * M, "not yet due a minute before"),
        (T0, None, T0 + 95 * M, T0 + 30 * M, "missed slots collapse into one run that is due now"),
        (T0, T0 + 10 * M, T0 + 1 * M, T0 + 30 * M, "a cooldown that ends before the interval changes nothing"),
        (T0, T0 + 40 * M, T0 + 1 * M, T0 + 40 * M, "a manual run that ended late pushes the next run back"),
    ],
)
def test_next_run_at(
    last_run_at: datetime | None, not_before: datetime | None, now: datetime, expected: datetime, why: str
) -> None:
    assert SCHEDULE.next_run_at(last_run_at=last_run_at, not_before=not_before, now=now) == expected, why


def test_fractional_minutes() -> None:
    schedule = Schedule(interval=timedelta(minutes=0.5), cooldown=timedelta(0))
    assert schedule.next_run_at(last_run_at=T0, not_before=None, now=T0) == T0 + timedelta(seconds=30)


def test_cooldown_counts_from_the_end_of_the_manual_run() -> None:
    assert SCHEDULE.cooldown_until(T0 + 7 * M) == T0 + 12 * M


@pytest.mark.parametrize(
    ("due", "now", "minutes"),
    [
        (T0 + 12 * M, T0, 12),
        (T0 + 12 * M, T0 + timedelta(seconds=1), 12),  # 11 min 59 s still reads "12 minutes"
        (T0 + timedelta(seconds=1), T0, 1),
        (T0, T0, 0),
        (T0, T0 + 5 * M, 0),  # overdue is never negative
    ],
)
def test_minutes_until(due: datetime, now: datetime, minutes: int) -> None:
    assert minutes_until(due, now) == minutes


@pytest.mark.parametrize(
    ("saved", "manual_end", "cooldown", "expected", "why"),
    [
        (T0 + 5 * M, T0, 1 * M, T0 + 1 * M, "a shorter --cooldown applies to the manual run already over"),
        (T0 + 5 * M, T0, 30 * M, T0 + 30 * M, "and a longer one too"),
        (T0 + 5 * M, T0, 0 * M, T0, "no cooldown any more: none"),
        (T0 + 5 * M, None, 1 * M, T0 + 5 * M, "the last run was automatic: the saved end (long past) stays"),
        (None, None, 1 * M, None, "no manual run on record"),
    ],
)
def test_a_saved_cooldown_is_counted_again_with_the_cooldown_of_today(
    saved: datetime | None, manual_end: datetime | None, cooldown: timedelta, expected: datetime | None, why: str
) -> None:
    schedule = Schedule(interval=30 * M, cooldown=cooldown)
    assert schedule.cooldown_after_restart(saved, manual_end=manual_end) == expected, why
