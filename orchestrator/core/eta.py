"""When the running run will end: pure functions of times and numbers, tested as a table.

Two ways to tell, the first that applies wins:

- ``progress``: the job reports percent done. Once it has reported at least :data:`MIN_PERCENT` percent, at
  least :data:`MIN_ELAPSED` after the start, the rate so far is assumed to hold: the run that took ``e``
  seconds to reach ``p`` percent ends ``e * 100 / p`` seconds after its start. Both floors keep a job that
  says "10%" in its first tenth of a second (it connected) from promising to end in one second.
- ``history``: else the median duration of the recent successful runs, counted from this run's start. The
  median, not the mean: one run that hung for an hour should not move every later estimate.

The estimate is made from the last report, not from "now": it stays put between reports, so a status
document that differs from the last one only by the passing of time is no news (``secondsLeft`` alone moves,
and the service recomputes it when it sends a document). A run that outlives its estimate shows
``secondsLeft`` 0 until the next report or its end.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.core.events import iso, parse_iso

MIN_PERCENT = 5.0
"""Percent done below which reported progress says too little about the rate."""
MIN_ELAPSED = timedelta(seconds=5)
"""Time into the run below which reported progress says too little about the rate."""
ETA_SAMPLE_RUNS = 10
"""How many of the latest successful runs the median is taken over."""


class Basis(StrEnum):
    """What an estimate rests on (the ``basis`` of the status document's ``eta``)."""

    PROGRESS = "progress"
    """The job's reported percent and the time it took to get there."""
    HISTORY = "history"
    """The median duration of recent successful runs."""


@dataclass(frozen=True, slots=True)
class Eta:
    finish_at: datetime
    basis: Basis

    def seconds_left(self, now: datetime) -> float:
        """Never negative: past its estimate, a run is "about to end", not "late by so much"."""
        return max(0.0, round((self.finish_at - now).total_seconds(), 1))

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"finishAt": iso(self.finish_at), "secondsLeft": self.seconds_left(now), "basis": self.basis.value}


def estimate(
    *,
    started_at: datetime,
    percent: float | None,
    percent_at: datetime | None,
    recent_durations: Sequence[float],
) -> Eta | None:
    """The estimated end of a run that started at ``started_at``; ``None`` if nothing can be said.

    ``percent`` is its last reported progress (``None``: it reports none) and ``percent_at`` when that was
    first seen; ``recent_durations`` the durations in seconds of recent successful runs, newest first (only
    the first :data:`ETA_SAMPLE_RUNS` count).
    """
    if percent is not None and percent_at is not None and percent >= MIN_PERCENT:
        elapsed = percent_at - started_at
        if elapsed >= MIN_ELAPSED:
            return Eta(started_at + elapsed * (100.0 / min(percent, 100.0)), Basis.PROGRESS)
    usable = [d for d in recent_durations[:ETA_SAMPLE_RUNS] if d > 0]
    if usable:
        return Eta(started_at + timedelta(seconds=statistics.median(usable)), Basis.HISTORY)
    return None


def with_clock(eta: object, now: datetime) -> object:
    """A status document's ``eta`` with ``secondsLeft`` as of ``now`` (anything else is left as it is)."""
    if not isinstance(eta, dict):
        return eta
    finish_at = parse_iso(eta.get("finishAt"))
    if finish_at is None:
        return eta
    return {**eta, "secondsLeft": max(0.0, round((finish_at - now).total_seconds(), 1))}


def without_clock(eta: object) -> object:
    """A status document's ``eta`` without what moves with time alone, for telling news from a tick."""
    if not isinstance(eta, dict):
        return eta
    return {key: value for key, value in eta.items() if key != "secondsLeft"}


class PercentSeen:
    """When the running run's current percent was first seen: the ``percent_at`` of :func:`estimate`.

    The progress document carries no time of its own; the service looks at it on every change, so the first
    look at a new percent is when it was reported (to a few milliseconds)."""

    def __init__(self) -> None:
        self._key: tuple[str, float] | None = None
        self._at: datetime | None = None

    def seen(self, run_id: str, percent: float, now: datetime) -> datetime:
        if self._key != (run_id, percent) or self._at is None:
            self._key, self._at = (run_id, percent), now
        return self._at
