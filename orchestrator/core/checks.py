"""Missed-run checks: a scheduled run that started late (or has not started), a run that takes much longer than
usual, and one that finished suspiciously fast. Pure: every function takes the times and durations it needs and
returns :class:`Check` values; the live side (what the status document and the notifications show) is in
:mod:`orchestrator.ops.notify`.

"Usual" is the median duration of recent *completed* runs, and only once there are :data:`MIN_SAMPLES` of them:
a median of two runs says little, and a first run is never "long".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.core.events import RunStatus, Source, iso
from orchestrator.core.median import median
from orchestrator.core.records import RunRecord

MIN_SAMPLES = 5
"""Completed runs needed before "long" and "fast" are judged."""
USUAL_SAMPLE_RUNS = 20
"""How many recent completed runs make "usual": enough to smooth one odd run, few enough to follow a trend."""
SCHEDULED = frozenset({Source.TIMER, Source.STARTUP})
"""Sources that mean "the schedule asked for this run"; a manual run cannot be late."""


class CheckKind(StrEnum):
    LATE = "late"
    """A scheduled run started more than the grace after it was due, or is that overdue and not started."""
    LONG = "long"
    """A run (running or finished) took more than ``long_factor`` times the usual duration."""
    FAST = "fast"
    """A completed run took less than ``fast_factor`` times the usual duration."""


@dataclass(frozen=True, slots=True)
class Check:
    """One finding, as the status document and the notifications show it."""

    kind: CheckKind
    run_id: str | None
    message: str
    since: datetime
    """When the condition began (the moment the run became late or long, or when it finished fast)."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "runId": self.run_id, "message": self.message, "since": iso(self.since)}


@dataclass(frozen=True, slots=True)
class Thresholds:
    late_grace: timedelta | None = timedelta(minutes=5)
    """``None``: no "late" check."""
    long_factor: float = 2.0
    """0: no "long" check."""
    fast_factor: float = 0.2
    """0: no "fast" check."""
    min_samples: int = MIN_SAMPLES


def usual_duration(durations: Sequence[float], min_samples: int = MIN_SAMPLES) -> float | None:
    """The median of ``durations`` (seconds), or ``None`` with fewer than ``min_samples`` of them."""
    if len(durations) < max(1, min_samples):
        return None
    return float(median(durations))


def is_scheduled(run: RunRecord) -> bool:
    return any(t.source in SCHEDULED for t in run.triggers)


def started_late(run: RunRecord, due: datetime | None, grace: timedelta | None) -> Check | None:
    """A scheduled run that started more than ``grace`` after ``due`` (when the schedule wanted it)."""
    if grace is None or due is None or not is_scheduled(run):
        return None
    late = run.started_at - due
    if late <= grace:
        return None
    return Check(
        CheckKind.LATE,
        run.run_id,
        f"run {run.run_id} started {human(late.total_seconds())} late (due at {clock_time(due)})",
        due + grace,
    )


def overdue(
    due: datetime | None, now: datetime, grace: timedelta | None, *, paused: bool, running: RunRecord | None
) -> Check | None:
    """The next scheduled run is more than ``grace`` overdue and has not started (the service was down, or a
    run is still going). While paused an overdue timer is what the user asked for, not news."""
    if grace is None or due is None or paused or now - due <= grace:
        return None
    why = f": run {running.run_id} is still running" if running is not None else ""
    return Check(
        CheckKind.LATE,
        None,
        # No "N min late" here: a document is sent when something changes, so a growing number would be stale
        # on every page between two changes. ``since`` is the moment it became late.
        f"the run due at {clock_time(due)} has not started{why}",
        due + grace,
    )


def long_since(run: RunRecord, usual: float | None, factor: float) -> datetime | None:
    """When ``run`` becomes "long" (``None``: never, the check is off or there is no usual duration yet)."""
    if usual is None or factor <= 0:
        return None
    return run.started_at + timedelta(seconds=usual * factor)


def running_long(run: RunRecord, now: datetime, usual: float | None, factor: float) -> Check | None:
    """``run`` (running as of ``now``, or finished) has taken more than ``factor`` x ``usual``."""
    since = long_since(run, usual, factor)
    end = run.finished_at or now
    if since is None or usual is None or end <= since:
        return None
    if run.finished_at is not None:
        took = f"took {human((end - run.started_at).total_seconds())}"
    else:  # the threshold, not the time so far: that would be stale between two documents (see ``overdue``)
        took = f"has been running for over {human((since - run.started_at).total_seconds())}"
    return Check(
        CheckKind.LONG,
        run.run_id,
        f"run {run.run_id} {took}, more than {factor:g}x the usual {human(usual)}",
        since,
    )


def finished_fast(run: RunRecord, usual: float | None, factor: float) -> Check | None:
    """A *completed* run that took less than ``factor`` x ``usual`` (a failed run ending early is no news: its
    failure is)."""
    if usual is None or factor <= 0 or run.status is not RunStatus.COMPLETED or run.finished_at is None:
        return None
    took = (run.finished_at - run.started_at).total_seconds()
    if took >= usual * factor:
        return None
    return Check(
        CheckKind.FAST,
        run.run_id,
        f"run {run.run_id} completed in {human(took)}, less than {factor:g}x the usual {human(usual)}",
        run.finished_at,
    )


def run_checks(
    run: RunRecord, *, now: datetime, due: datetime | None, durations: Sequence[float], thresholds: Thresholds
) -> list[Check]:
    """Every check of one run (running or finished); ``due``: when the schedule wanted it (``None``: unknown),
    ``durations``: recent completed runs' durations, this run's not among them."""
    usual = usual_duration(durations, thresholds.min_samples)
    found = (
        started_late(run, due, thresholds.late_grace),
        running_long(run, now, usual, thresholds.long_factor),
        finished_fast(run, usual, thresholds.fast_factor),
    )
    return [check for check in found if check is not None]


def recent_durations(records: Iterable[Mapping[str, Any]], *, exclude: str | None = None) -> list[float]:
    """Durations (seconds) of the completed runs among ``records`` (run documents, newest first), at most
    :data:`USUAL_SAMPLE_RUNS`, leaving out the run ``exclude``."""
    found: list[float] = []
    for record in records:
        duration = record.get("durationSeconds")
        if (
            record.get("status") == RunStatus.COMPLETED.value
            and record.get("runId") != exclude
            and isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and duration >= 0
        ):
            found.append(float(duration))
            if len(found) == USUAL_SAMPLE_RUNS:
                break
    return found


def human(seconds: float) -> str:
    """``42 s``, ``12 min``, ``2 h 5 min``: what a person reads in a status line."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def clock_time(at: datetime) -> str:
    return at.strftime("%H:%M UTC")
