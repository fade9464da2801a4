"""When the running run will end: pure functions of times and numbers, tested as a table.

Three ways to tell, the first that applies wins:

- ``steps``: the steps of recent successful runs (:class:`StepPlan`). The plan is the steps the newest one went
  through, in order, each with its median duration over the recent runs that had it. A run in a step of the
  plan ends when that step has taken its median (or at once, if it has already overrun it), plus the medians of
  the plan's steps after it that this run has not done yet. The job's percent is not needed: a job whose steps
  are uneven (one takes most of the run) and counts its percent in steps misleads a rate, not the steps.
  The service's own first step (:data:`~orchestrator.core.steps.STARTING`, the job's start-up) is not in the
  plan: while a run is in it, its job has said nothing the history does not know (the plan would add up to about
  the median run), and once it is over it is no part of what is left. A plan of one step says no more than the
  history either, and less than the job's percent: it is not used.
- ``progress``: the job reports percent done. Once it has reported at least :data:`MIN_PERCENT` percent, at
  least :data:`MIN_ELAPSED` after the start, the rate so far is assumed to hold: the run that took ``e``
  seconds to reach ``p`` percent ends ``e * 100 / p`` seconds after its start. Both floors keep a job that
  says "10%" in its first tenth of a second (it connected) from promising to end in one second.
- ``history``: else the median duration of the recent successful runs, counted from this run's start. The
  median, not the mean: one run that hung for an hour should not move every later estimate.

The estimate is made from the last report (a new step or a new percent), not from "now": it stays put between
reports, so a status document that differs from the last one only by the passing of time is no news
(``secondsLeft`` alone moves, and the service recomputes it when it sends a document). A run that outlives its
estimate shows ``secondsLeft`` 0 until the next report or its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.core.events import iso, parse_iso
from orchestrator.core.median import median
from orchestrator.core.steps import STARTING, Step

MIN_PERCENT = 5.0
"""Percent done below which reported progress says too little about the rate."""
MIN_ELAPSED = timedelta(seconds=5)
"""Time into the run below which reported progress says too little about the rate."""
ETA_SAMPLE_RUNS = 10
"""How many of the latest successful runs the medians are taken over (of whole runs, and of each step)."""


class Basis(StrEnum):
    """What an estimate rests on (the ``basis`` of the status document's ``eta``)."""

    STEPS = "steps"
    """The median durations, in recent successful runs, of the current step and of the steps still to come."""
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


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What recent successful runs say of a run's steps: the names the newest one went through after its start-up,
    in order, and each name's median duration in seconds over the runs that had it. A name met twice in one run
    counts once, for the time of both (a job that goes back to a step spends that much in it)."""

    names: tuple[str, ...]
    medians: Mapping[str, float]
    position: Mapping[str, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", {name: index for index, name in enumerate(self.names)})

    @classmethod
    def of(cls, runs: Sequence[Sequence[Step]]) -> StepPlan | None:
        """The plan from the steps of recent successful runs, newest first (only the first
        :data:`ETA_SAMPLE_RUNS` count); ``None`` if the newest has no step of its job's."""
        times = [_time_per_name(steps) for steps in runs[:ETA_SAMPLE_RUNS]]
        if not times:
            return None
        names = tuple(name for name in times[0] if name != STARTING)  # in the order the newest run first met them
        medians = {name: median(run[name] for run in times if name in run) for name in names}
        return cls(names, medians) if names else None

    def finish_at(self, steps: Sequence[Step], reported_at: datetime) -> datetime | None:
        """When a run whose steps so far are ``steps`` (the current one last) ends, as of its last report at
        ``reported_at``; ``None`` if the plan says nothing of its current step."""
        if len(self.names) < 2 or not steps:
            return None
        current = steps[-1]
        position = self.position.get(current.name)
        if position is None:
            return None
        done = {step.name for step in steps[:-1]}
        left = sum(self.medians[name] for name in self.names[position + 1 :] if name not in done)
        step_end = max(current.started_at + timedelta(seconds=self.medians[current.name]), reported_at)
        return step_end + timedelta(seconds=left)


def _time_per_name(steps: Sequence[Step]) -> dict[str, float]:
    times: dict[str, float] = {}
    for step in steps:
        duration = step.duration_seconds
        if duration is not None:
            times[step.name] = times.get(step.name, 0.0) + duration
    return times


def estimate(
    *,
    started_at: datetime,
    percent: float | None,
    percent_at: datetime | None,
    recent_durations: Sequence[float],
    steps: Sequence[Step] = (),
    plan: StepPlan | None = None,
) -> Eta | None:
    """The estimated end of a run that started at ``started_at``; ``None`` if nothing can be said.

    ``percent`` is its last reported progress (``None``: it reports none) and ``percent_at`` when that was
    first seen; ``recent_durations`` the durations in seconds of recent successful runs, newest first (only
    the first :data:`ETA_SAMPLE_RUNS` count); ``steps`` the run's steps so far, the current one last, and
    ``plan`` what recent successful runs say of them.
    """
    if plan is not None and steps:
        current_start = steps[-1].started_at
        reported_at = current_start if percent_at is None else max(current_start, percent_at)
        finish_at = plan.finish_at(steps, reported_at)
        if finish_at is not None:
            return Eta(finish_at, Basis.STEPS)
    if percent is not None and percent_at is not None and percent >= MIN_PERCENT:
        elapsed = percent_at - started_at
        if elapsed >= MIN_ELAPSED:
            return Eta(started_at + elapsed * (100.0 / min(percent, 100.0)), Basis.PROGRESS)
    usable = [d for d in recent_durations[:ETA_SAMPLE_RUNS] if d > 0]
    if usable:
        return Eta(started_at + timedelta(seconds=median(usable)), Basis.HISTORY)
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
