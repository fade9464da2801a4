"""Streaks of a problem (orchestrator/core/streak.py): said when one starts and when it ends. A table."""

from __future__ import annotations

import pytest

from orchestrator.core.streak import Streak

# Each step: "fail", "quiet" (a failure not worth saying) or "ok"; each answer: what the call returned.


@pytest.mark.parametrize(
    ("steps", "answers", "failing"),
    [
        ([], [], False),
        (["ok", "ok"], [False, False], False),  # no streak, nothing to say
        (["fail"], [True], True),
        (["fail", "fail", "fail"], [True, False, False], True),  # said once however often it happens
        (["fail", "fail", "ok"], [True, False, True], False),  # and its end once
        (["fail", "ok", "ok"], [True, True, False], False),
        (["fail", "ok", "fail", "ok"], [True, True, True, True], False),  # a new streak is said again
        (["quiet", "fail", "ok"], [False, False, False], False),  # began quietly: said neither then nor after
        (["quiet", "ok", "fail"], [False, False, True], True),  # the next streak is said
        (["fail", "quiet", "ok"], [True, False, True], False),  # a quiet failure inside a said streak
    ],
)
def test_a_streak_is_said_when_it_starts_and_when_it_ends(steps: list[str], answers: list[bool], failing: bool) -> None:
    streak = Streak()
    got = [streak.recovered() if step == "ok" else streak.failed(quiet=step == "quiet") for step in steps]
    assert got == answers
    assert streak.failing is failing
