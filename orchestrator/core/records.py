"""The records the service keeps: a run (:class:`RunRecord`), a pause, and the :class:`State` that must survive a
restart (when the last run started and how it ended, the cooldown, pending triggers, the run in flight, so a
crash mid-run is noticed at the next start, and a pause of the automatic schedule). Pure data and its JSON
form; :mod:`orchestrator.store` keeps it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from orchestrator.core.events import RunStatus, Source, Trigger, clean_reason, iso, parse_iso

log = logging.getLogger(__name__)

MAX_RECORDED_TRIGGERS = 100
"""Triggers kept by name for one run; beyond that only counted (a burst of thousands of files is one run)."""
BRIEF_TRIGGERS = 3
"""Triggers (and distinct reasons) a run's brief form names: the status document is sent to every open event
stream on every change, so it carries a run's first few, and the run record (the history) all of them."""
BRIEF_ERROR_CHARS = 2000
"""Characters of a run's error its brief form keeps (the whole error can be ten 8 KiB lines of stderr)."""
DEFAULT_JOB = "snapshot"
"""The one job of a service without a jobs file. Records written before a service had several jobs name no job:
they are the default job's (whatever the service names its default job when it reads them)."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run: what asked for it, when it ran, how it ended (``status`` is ``running`` while it runs)."""

    run_id: str
    triggers: tuple[Trigger, ...]
    started_at: datetime
    status: RunStatus = RunStatus.RUNNING
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str | None = None
    step: str = ""
    trigger_count: int = 0
    """How many triggers this run absorbed (``triggers`` keeps the first :data:`MAX_RECORDED_TRIGGERS`)."""
    pid: int | None = None
    """The job's process (and process group) id while it runs, to stop it after a crash of the service."""
    retry_of: str | None = None
    """The run this one runs again: the service died during it (see
    :func:`orchestrator.runner.recovery.recovered_state`)."""
    retried_beyond: int = 0
    """Of the triggers counted beyond the recorded ones, how many are retries already (a crash drops those)."""
    stop_requested: tuple[RunStatus, str] | None = None
    """Saved before the runner starts to stop the job (cancel, timeout, stall, service stop): a run the
    service dies in while stopping it was meant to end, and is not run again."""
    job: str = DEFAULT_JOB
    """The job this is a run of."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger_count", max(self.trigger_count, len(self.triggers)))

    @property
    def source(self) -> Source:
        """The source the job is told about: the first trigger's (the one that started the run)."""
        return self.triggers[0].source if self.triggers else Source.TIMER

    @property
    def reason(self) -> str:
        return "; ".join(self._reasons())

    def _reasons(self) -> list[str]:
        reasons = [f"retry of {self.retry_of}"] if self.retry_of else []
        reasons += (t.reason for t in self.triggers if t.reason)
        return list(dict.fromkeys(reasons))

    @property
    def is_manual(self) -> bool:
        return any(t.source.is_manual for t in self.triggers)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        """The whole record: what the state file and the history keep."""
        return self._json(self.reason, self.triggers, self.error)

    def to_brief_json(self) -> dict[str, Any]:
        """The record as the status document carries it: the same fields, bounded whatever the run absorbed.
        ``triggers`` lists the first :data:`BRIEF_TRIGGERS` (``triggerCount`` still counts all), ``reason``
        names as many distinct reasons and then how many more there are, and ``error`` is cut with a mark."""
        reasons = self._reasons()
        reason = "; ".join(reasons[:BRIEF_TRIGGERS])
        if len(reasons) > BRIEF_TRIGGERS:
            reason += f"; and {len(reasons) - BRIEF_TRIGGERS} more"
        error = self.error
        if error is not None and len(error) > BRIEF_ERROR_CHARS:
            more = len(error) - BRIEF_ERROR_CHARS
            error = error[:BRIEF_ERROR_CHARS] + f"… [{more} more characters in the run record]"
        return self._json(reason, self.triggers[:BRIEF_TRIGGERS], error)

    def _json(self, reason: str, triggers: tuple[Trigger, ...], error: str | None) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "job": self.job,
            "status": self.status.value,
            "trigger": self.source.value,
            "reason": reason,
            "triggers": [t.to_json() for t in triggers],
            "triggerCount": self.trigger_count,
            "queuedAt": iso(min((t.at for t in self.triggers), default=self.started_at)),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "durationSeconds": self.duration_seconds,
            "exitCode": self.exit_code,
            "error": error,
            "step": self.step,
            "pid": self.pid,
            "retryOf": self.retry_of,
            "retriedBeyond": self.retried_beyond,
            "stopRequested": (
                None
                if self.stop_requested is None
                else {"status": self.stop_requested[0].value, "reason": self.stop_requested[1]}
            ),
        }

    @classmethod
    def from_json(cls, data: object, *, default_job: str = DEFAULT_JOB) -> RunRecord | None:
        """The record in ``data`` (``None`` if it is not one); a record that names no job is ``default_job``'s."""
        if not isinstance(data, dict):
            return None
        started_at = parse_iso(data.get("startedAt"))
        run_id = data.get("runId")
        try:
            status = RunStatus(str(data.get("status")))
        except ValueError:
            return None
        if started_at is None or not isinstance(run_id, str):
            return None
        raw_triggers = data.get("triggers")
        triggers = tuple(
            t
            for t in (Trigger.from_json(x) for x in (raw_triggers if isinstance(raw_triggers, list) else []))
            if t is not None
        )
        exit_code = data.get("exitCode")
        error = data.get("error")
        step = data.get("step")
        count = data.get("triggerCount")
        pid = data.get("pid")
        retry_of = data.get("retryOf")
        return cls(
            run_id=run_id,
            triggers=triggers,
            started_at=started_at,
            status=status,
            finished_at=parse_iso(data.get("finishedAt")),
            exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
            error=error if isinstance(error, str) else None,
            step=step if isinstance(step, str) else "",
            trigger_count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
            pid=_pid(pid),
            retry_of=_run_id(retry_of),
            retried_beyond=_count(data.get("retriedBeyond")),
            stop_requested=_stop_requested(data.get("stopRequested")),
            job=_job(data.get("job"), default_job),
        )


def _job(data: object, default: str) -> str:
    return data if isinstance(data, str) and data else default


def _pid(data: object) -> int | None:
    return data if isinstance(data, int) and not isinstance(data, bool) and data > 1 else None


def _count(data: object) -> int:
    return data if isinstance(data, int) and not isinstance(data, bool) and data > 0 else 0


def _leftovers(data: object) -> tuple[tuple[str, int | None], ...]:
    found: list[tuple[str, int | None]] = []
    for item in data if isinstance(data, list) else []:
        run_id = _run_id(item.get("runId")) if isinstance(item, dict) else None
        if run_id is not None:
            found.append((run_id, _pid(item.get("pid"))))
    return tuple(found[:MAX_RECORDED_TRIGGERS])


def _run_id(data: object) -> str | None:
    return data if isinstance(data, str) and data else None


def _stop_requested(data: object) -> tuple[RunStatus, str] | None:
    if not isinstance(data, dict):
        return None
    try:
        status = RunStatus(str(data.get("status")))
    except ValueError:
        return None
    reason = data.get("reason")
    return status, reason if isinstance(reason, str) else ""


@dataclass(frozen=True, slots=True)
class Pause:
    """The automatic schedule is off (manual triggers still run): since when, and why (may be empty)."""

    since: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", clean_reason(self.reason))

    def to_json(self) -> dict[str, Any]:
        return {"since": iso(self.since), "reason": self.reason}

    @classmethod
    def from_json(cls, data: object) -> Pause | None:
        """``None`` for anything that is not a pause: a damaged record resumes the schedule rather than
        stopping the service from starting (the file's other contents matter more)."""
        if not isinstance(data, dict):
            return None
        since = parse_iso(data.get("since"))
        reason = data.get("reason", "")
        if since is None:
            return None
        return cls(since=since, reason=reason if isinstance(reason, str) else "")


@dataclass(frozen=True, slots=True)
class State:
    last_run: RunRecord | None = None
    """The last run that ended (its ``started_at`` is the ``lastRunAt`` of the status document)."""
    current: RunRecord | None = None
    """The run in flight; still set at start-up only if the service died during a run."""
    not_before: datetime | None = None
    """End of the cooldown after the last manual run: no automatic run before it."""
    pending: tuple[Trigger, ...] = field(default=())
    """Triggers taken but not yet run; they become the next run."""
    pending_count: int = 0
    """How many triggers are pending, counting those beyond the recorded ones."""
    paused: Pause | None = None
    """Set while the automatic schedule is paused (``POST /api/snapshot/pause``); survives restarts."""
    retry_of: str | None = None
    """The pending triggers include those of this run, which the service died in: the next run retries it."""
    retried_beyond: int = 0
    """Of the pending triggers counted beyond the recorded ones, how many are retries already."""
    leftovers: tuple[tuple[str, int | None], ...] = ()
    """(run id, pid) of runs the service died in whose jobs may still run: kept until they are stopped, so a
    crash during that stop leaves the next start the same search to make."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pending_count", max(self.pending_count, len(self.pending)))

    def with_trigger(self, trigger: Trigger) -> State:
        pending = self.pending if len(self.pending) >= MAX_RECORDED_TRIGGERS else (*self.pending, trigger)
        return replace(self, pending=pending, pending_count=self.pending_count + 1)

    def with_triggers(self, triggers: Sequence[Trigger]) -> State:
        """:meth:`with_trigger` for each of ``triggers`` in turn, in one step (a burst's batch is thousands)."""
        if not triggers:
            return self
        room = max(0, MAX_RECORDED_TRIGGERS - len(self.pending))
        pending = (*self.pending, *triggers[:room]) if room else self.pending
        return replace(self, pending=pending, pending_count=self.pending_count + len(triggers))

    @property
    def last_run_at(self) -> datetime | None:
        run = self.current or self.last_run
        return run.started_at if run else None

    def to_json(self) -> dict[str, Any]:
        """One job's state; the state file (orchestrator/store/statefile.py) keeps every job's, and its version."""
        return {
            "lastRun": self.last_run.to_json() if self.last_run else None,
            "current": self.current.to_json() if self.current else None,
            "notBefore": iso(self.not_before),
            "pending": [t.to_json() for t in self.pending],
            "pendingCount": self.pending_count,
            "paused": self.paused.to_json() if self.paused else None,
            "retryOf": self.retry_of,
            "retriedBeyond": self.retried_beyond,
            "leftovers": [{"runId": run_id, "pid": pid} for run_id, pid in self.leftovers],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, job: str = DEFAULT_JOB) -> State:
        """``job``'s state; its runs that name no job (written before there were several) are ``job``'s."""
        pending = doc.get("pending")
        count = doc.get("pendingCount")
        return cls(
            pending_count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
            last_run=RunRecord.from_json(doc.get("lastRun"), default_job=job),
            current=RunRecord.from_json(doc.get("current"), default_job=job),
            not_before=parse_iso(doc.get("notBefore")),
            pending=tuple(
                t
                for t in (Trigger.from_json(x) for x in (pending if isinstance(pending, list) else []))
                if t is not None
            ),
            paused=_pause(doc.get("paused")),
            retry_of=_run_id(doc.get("retryOf")),
            retried_beyond=_count(doc.get("retriedBeyond")),
            leftovers=_leftovers(doc.get("leftovers")),
        )


def _pause(data: object) -> Pause | None:
    """The saved pause; absent in files written before pausing existed. A damaged one resumes the schedule,
    and says so: whoever paused for a migration must not find snapshots running without a word."""
    pause = Pause.from_json(data)
    if pause is None and data is not None:
        log.warning("the saved pause is damaged (%.200r); automatic snapshots are ON again", data)
    return pause
