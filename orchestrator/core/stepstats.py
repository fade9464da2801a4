"""Where a run's time goes: per step name over recent completed runs, how long it usually takes (median, p90),
its share of the runs' time, and whether the latest run spent unusually long in it. Pure, tested as a table.

The figures are over the runs that recorded steps: a run recorded before runs kept steps, or whose job never
reported, says nothing about where its time went, and counting its duration would shrink every share.

A step name that comes back within one run ("Fetching", "Saving", "Fetching") counts once for that run, with
the durations of its parts added up and its start at its first part: the question is how long a run spends
in it, not how long each visit lasts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.core.median import median
from orchestrator.core.steps import Step

DEFAULT_RUNS = 20
MAX_RUNS = 100
SLOW_FACTOR = 1.5
"""The latest run's time in a step over this many times its median is slow..."""
SLOW_MIN_SECONDS = 1.0
"""...if it is also at least this much over it: a step of 0.1 s that took 0.2 s is noise, not news."""
SLOW_MIN_RUNS = 3
"""Runs that must have the step before it can be called slow: a median of one or two runs is no yardstick."""


@dataclass(frozen=True, slots=True)
class RunTimeline:
    """One completed run: its id, start and duration (seconds; ``None`` if not recorded) and its steps."""

    run_id: str
    started_at: datetime | None
    duration_seconds: float | None
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class StepStats:
    """One step name over the runs: in how many it was, the median and 90th percentile of its time per run,
    its share of the runs' summed durations, the latest run's time in it (``None``: not there) and whether that
    was slow (see :func:`is_slow`)."""

    name: str
    runs: int
    median_seconds: float
    p90_seconds: float
    share: float
    latest_seconds: float | None
    slow: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runs": self.runs,
            "medianSeconds": self.median_seconds,
            "p90Seconds": self.p90_seconds,
            "share": self.share,
            "latestSeconds": self.latest_seconds,
            "slow": self.slow,
        }


@dataclass(frozen=True, slots=True)
class StepSummary:
    """The answer of ``GET /api/snapshot/steps``: the runs it is over (newest first), their median duration,
    and one :class:`StepStats` per step name, in the order a run goes through them."""

    run_ids: tuple[str, ...]
    median_run_seconds: float | None
    steps: tuple[StepStats, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": len(self.run_ids),
            "runIds": list(self.run_ids),
            "medianRunSeconds": self.median_run_seconds,
            "latestRunId": self.run_ids[0] if self.run_ids else None,
            "steps": [step.to_json() for step in self.steps],
        }


@dataclass(frozen=True, slots=True)
class _Visit:
    """One step name in one run: the seconds spent in it and when it first began, from the run's start."""

    seconds: float
    offset: float


def summarize(runs: Sequence[RunTimeline]) -> StepSummary:
    """The figures over ``runs`` (newest first), leaving out the runs without steps."""
    used = [run for run in runs if run.steps]
    visits = [_visits(run) for run in used]
    totals = [_run_seconds(run) for run in used]
    names = _ordered(visits)
    stats = tuple(_stats(name, visits, sum(totals)) for name in names)
    return StepSummary(
        run_ids=tuple(run.run_id for run in used),
        median_run_seconds=_round(median(totals)) if totals else None,
        steps=stats,
    )


def is_slow(latest: float | None, median: float, runs: int) -> bool:
    """Whether the latest run's ``latest`` seconds in a step are unusually long against its ``median``."""
    if latest is None or runs < SLOW_MIN_RUNS:
        return False
    return latest > SLOW_FACTOR * median and latest - median >= SLOW_MIN_SECONDS


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default): the 90th of 1..10 is 9.1."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _visits(run: RunTimeline) -> dict[str, _Visit]:
    """Each step name of ``run`` with its time in all; dicts keep the order in which names first came."""
    start = run.started_at or run.steps[0].started_at
    found: dict[str, _Visit] = {}
    for step in run.steps:
        seconds = step.duration_seconds or 0.0  # an open step in a completed run: its end was never heard
        before = found.get(step.name)
        if before is None:
            found[step.name] = _Visit(seconds, max(0.0, (step.started_at - start).total_seconds()))
        else:
            found[step.name] = _Visit(before.seconds + seconds, before.offset)
    return found


def _run_seconds(run: RunTimeline) -> float:
    if run.duration_seconds is not None and run.duration_seconds >= 0:
        return run.duration_seconds
    return sum(step.duration_seconds or 0.0 for step in run.steps)


def _ordered(visits: Sequence[dict[str, _Visit]]) -> list[str]:
    """The latest run's names in its order, then every other name by its median start in the runs that have it."""
    first = list(visits[0]) if visits else []
    others = {name for run in visits for name in run} - set(first)

    def median_offset(name: str) -> float:
        return median(run[name].offset for run in visits if name in run)

    return first + sorted(others, key=lambda name: (median_offset(name), name))


def _stats(name: str, visits: Sequence[dict[str, _Visit]], total_seconds: float) -> StepStats:
    seconds = [run[name].seconds for run in visits if name in run]
    middle = median(seconds)
    latest = visits[0][name].seconds if name in visits[0] else None
    return StepStats(
        name=name,
        runs=len(seconds),
        median_seconds=_round(middle),
        p90_seconds=_round(percentile(seconds, 0.9)),
        # At most 1: a run's duration and its steps' are measured apart, and may differ by a rounding.
        share=min(1.0, round(sum(seconds) / total_seconds, 4)) if total_seconds > 0 else 0.0,
        latest_seconds=_round(latest) if latest is not None else None,
        slow=is_slow(latest, middle, len(seconds)),
    )


def _round(seconds: float) -> float:
    return round(seconds, 3)
