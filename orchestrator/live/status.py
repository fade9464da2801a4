"""The status document (``GET /api/snapshot/status`` and each SSE ``status`` event): built by a pure function of
the runner's record, the progress, the schedule and ``now``; and what publishing it needs (which changes are
news, which progress to show, one encoding of an event for every stream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from orchestrator.core import eta
from orchestrator.core.clock import Clock
from orchestrator.core.events import RunStatus, iso, parse_iso
from orchestrator.core.records import DEFAULT_JOB, RunRecord, State
from orchestrator.core.schedule import minutes_until
from orchestrator.core.steps import Step
from orchestrator.live.hub import Hub
from orchestrator.live.progress import Progress

CLOCK_FIELDS = ("serverTime", "secondsUntilNextRun", "minutesUntilNextRun")
"""Fields that change with time alone; a document that differs only in them is no news."""
ENCODING_FRESH_SECONDS = 0.5
"""How long one encoding of a status event serves every stream that sends it. Long enough for a change to
reach a thousand streams (about 0.1 s), short enough that the clock fields a late sender shows stay right."""


@dataclass(frozen=True, slots=True)
class StatusInputs:
    """Everything the status document says, as of one moment."""

    state: State
    progress: Progress
    due: datetime | None
    """When the next automatic run is due (``None``: the job has no automatic runs)."""
    interval_minutes: float | None
    """``None`` for a job on a calendar or with no automatic runs."""
    cooldown_minutes: float
    stopping: str | None = None
    """Why the running run is being stopped (``None``: it is not)."""
    eta: dict[str, Any] | None = None
    """The running run's finish estimate (orchestrator/ops/estimator.py)."""
    checks: tuple[dict[str, Any], ...] = ()
    """The missed-run checks (orchestrator/ops/notify.py)."""
    job: str = DEFAULT_JOB
    schedule: dict[str, Any] | None = None
    """How the job is scheduled (``kind``: ``interval``, ``cron`` or ``manual``)."""
    waiting: bool = False
    """Runs are asked for and wait for a slot."""
    after: tuple[str, ...] = ()
    """The jobs whose completed runs trigger this one."""


class Checks(Protocol):
    """The missed-run checks the status document shows (orchestrator/ops/notify.py)."""

    def status_checks(
        self, *, now: datetime, due: datetime | None, paused: bool, current: RunRecord | None, last: RunRecord | None
    ) -> list[dict[str, Any]]: ...

    def changes_at(self, now: datetime) -> datetime | None:
        """The first moment after ``now`` from which the last ``status_checks`` may answer otherwise with
        nothing but time passing (``None``: never)."""


class NoChecks:
    def status_checks(
        self, *, now: datetime, due: datetime | None, paused: bool, current: RunRecord | None, last: RunRecord | None
    ) -> list[dict[str, Any]]:
        return []

    def changes_at(self, now: datetime) -> datetime | None:
        return None


def status_document(inputs: StatusInputs, now: datetime) -> dict[str, Any]:
    """The status document: the original design's fields first, then what users need beyond."""
    state, due, progress = inputs.state, inputs.due, inputs.progress
    current = state.current
    return {
        "running": current is not None,
        "lastRunAt": iso(state.last_run_at),
        "nextRunAt": iso(due),
        "intervalMinutes": _tidy(inputs.interval_minutes) if inputs.interval_minutes is not None else None,
        "minutesUntilNextRun": minutes_until(due, now) if due is not None else None,
        "progress": {
            "status": progress.status.value,
            "step": progress.step,
            "progress": progress.to_json()["progress"],
            "detail": progress.detail,
            "done": progress.done,
            "total": progress.total,
            "stepStartedAt": iso(progress.step_started_at),
        },
        "secondsUntilNextRun": max(0.0, round((due - now).total_seconds(), 1)) if due is not None else None,
        "cooldownMinutes": _tidy(inputs.cooldown_minutes),
        "cooldownUntil": iso(state.not_before) if state.not_before and state.not_before > now else None,
        "queued": state.pending_count > 0,
        "pendingTriggers": state.pending_count,
        "currentRun": current.to_brief_json() if current else None,
        "stopping": inputs.stopping,
        "lastRun": state.last_run.to_brief_json() if state.last_run else None,
        "paused": state.paused.to_json() if state.paused else None,
        "eta": inputs.eta,
        "checks": list(inputs.checks),
        "serverTime": iso(now),
        "job": inputs.job,
        "schedule": inputs.schedule or {"kind": "interval", "minutes": _tidy(inputs.interval_minutes or 0)},
        "waiting": inputs.waiting,
        "after": list(inputs.after),
    }


def shown_progress(ours: Progress, from_file: Progress | None, *, ours_on_disk: bool) -> Progress:
    """The progress to show: the file's while it describes the run we know of (the job may write it itself),
    else the runner's own (``ours``), which is ahead of the file for the moment a write takes to land, and for
    as long as writes fail (a full or read-only data folder)."""
    if ours.run_id is None:
        return from_file or ours  # nothing ran in this process yet: the file is all we know
    if (
        from_file is not None
        and ours_on_disk
        and from_file.run_id in (ours.run_id, None)
        and from_file.status == ours.status
    ):
        return from_file
    return ours


def with_step_start(shown: Progress, run_id: str | None, steps: tuple[Step, ...]) -> Progress:
    """``shown`` with its step's start as the runner keeps it: the runner tracks the steps whoever reports them,
    and a job that writes the progress file itself does not say when its step began."""
    if shown.status is not RunStatus.RUNNING or not steps or shown.run_id not in (run_id, None):
        return shown
    return replace(shown, step_started_at=steps[-1].started_at)


def with_clock(document: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``document`` with its clock fields as of ``now``: a published state may be old when it is sent (a client
    connecting long after the last change), and a page counts down from these fields."""
    if "serverTime" not in document:
        return document
    next_run_at = parse_iso(document.get("nextRunAt"))
    return {
        **document,
        "minutesUntilNextRun": minutes_until(next_run_at, now) if next_run_at is not None else None,
        "secondsUntilNextRun": (
            max(0.0, round((next_run_at - now).total_seconds(), 1)) if next_run_at is not None else None
        ),
        "eta": eta.with_clock(document.get("eta"), now),
        "serverTime": iso(now),
    }


def without_clock(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without the fields that change with time alone: what decides whether it is news."""
    key = {k: v for k, v in document.items() if k not in CLOCK_FIELDS}
    key["eta"] = eta.without_clock(key.get("eta"))  # a clock field one level down: eta.secondsLeft
    return key


class Publisher:
    """Hands status documents to the hub, only those that are news, and encodes each published one once for
    every stream that sends it at about the same time (a change reaches every open stream at once, and one
    encoding of a large document costs about a millisecond)."""

    def __init__(self, hub: Hub, clock: Clock) -> None:
        self.hub = hub
        self._clock = clock
        self._published: dict[str, Any] = {}
        self._encoded: tuple[int, float, str] | None = None
        """The last status event's data: its version, when it was encoded (monotonic), and the JSON."""

    def publish(self, document: dict[str, Any]) -> None:
        key = without_clock(document)
        if key != self._published:
            self._published = key
            self.hub.publish(document)

    def status_event(self, version: int, document: dict[str, Any]) -> str:
        """The JSON of a published status ``document`` (hub ``version``) with its clock fields as of now."""
        now = self._clock.monotonic()
        cached = self._encoded
        if cached is not None and cached[0] == version and now - cached[1] < ENCODING_FRESH_SECONDS:
            return cached[2]
        data = json.dumps(with_clock(document, self._clock.now()))
        self._encoded = (version, now, data)
        return data


def _tidy(minutes: float) -> float | int:
    return int(minutes) if float(minutes).is_integer() else minutes
