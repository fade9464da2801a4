"""Crash recovery at start: a run still marked current means the previous service died during it. It is
recorded as an error (or as the stop it was getting) and, unless it was being stopped on purpose or was itself
a retry, its triggers are owed one more run. Then the history's rows still ``running`` are closed."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from orchestrator.core.events import RunStatus
from orchestrator.core.records import MAX_RECORDED_TRIGGERS, RunRecord, State
from orchestrator.core.schedule import Cooldown
from orchestrator.runner.recording import HistoryRecorder
from orchestrator.store import StoreUnavailable

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: service stopped"


def after_restart(state: State, schedule: Cooldown) -> State:
    """The loaded state with the cooldown a restart owes (a manual run's cooldown survives it)."""
    last = state.last_run
    manual_end = last.finished_at if last is not None and last.is_manual else None
    return replace(state, not_before=schedule.cooldown_after_restart(state.not_before, manual_end=manual_end))


def interrupted(current: RunRecord, *, now: datetime, last_step: str) -> RunRecord:
    """How ``current``, the run the previous service died in, ended."""
    if current.stop_requested is not None:
        status, why = current.stop_requested
        error = f"interrupted: service stopped while the job was being stopped ({why})"
    else:
        status, error = RunStatus.ERROR, INTERRUPTED
    return replace(current, pid=None, status=status, finished_at=now, error=error, step=last_step, stop_requested=None)


def recovered_state(state: State, done: RunRecord) -> State:
    """``state`` once its current run is recorded as ``done``: the run's job is left to be found and stopped,
    and the run's triggers are pending again if they are owed a retry."""
    current = state.current
    assert current is not None
    state = replace(state, current=None, last_run=done, leftovers=(*state.leftovers, (current.run_id, current.pid)))
    # Each trigger is owed one more try after a crash, not more: a run that kills the service every time
    # must not do so for ever (and a trigger that joined a retry still gets its own).
    owed = tuple(replace(t, retried=True) for t in current.triggers if not t.retried)
    dropped = sum(t.retried for t in current.triggers) + current.retried_beyond
    fresh_beyond = current.trigger_count - len(current.triggers) - current.retried_beyond
    if current.stop_requested is not None:
        log.warning(
            "run %s was interrupted by a service stop while it was being stopped; recorded as %s, not run again",
            current.run_id,
            done.status.value,
        )
        return state
    if not owed and not fresh_beyond:
        log.warning(
            "run %s%s was interrupted by a service stop; recorded as an error%s",
            current.run_id,
            f" (a retry of {current.retry_of})" if current.retry_of else "",
            ", not run again: its triggers were retried once already" if current.triggers else "",
        )
        return state
    log.warning(
        "run %s was interrupted by a service stop; recorded as an error, and run again once%s",
        current.run_id,
        f" ({dropped} trigger(s) already retried once are dropped)" if dropped else "",
    )
    # Beyond the recorded triggers only a count is kept, and how many of it are retries already.
    # (The owed ones come first and are never cut: a run records at most as many as a state keeps.)
    return replace(
        state,
        pending=(*owed, *state.pending)[:MAX_RECORDED_TRIGGERS],
        pending_count=state.pending_count + len(owed) + fresh_beyond,
        retried_beyond=state.retried_beyond + fresh_beyond,
        retry_of=current.run_id,
    )


def reconcile_history(recorder: HistoryRecorder, last: RunRecord | None, now: datetime, *, job: str) -> None:
    """Rows of ``job`` still ``running`` with no run of it in flight: the state (saved first) knows how the last
    one ended; any other is closed as interrupted (the service may have died between saving the state and
    finishing the history row). Other jobs' rows are theirs to close: they may be running now."""
    history = recorder.history
    try:
        unfinished = history.unfinished(job=job)
    except StoreUnavailable as exc:
        log.error("cannot read the run history %s to close interrupted runs: %s", history.location, exc)
        return
    for run in unfinished:
        if last is not None and run.run_id == last.run_id:
            fixed = last
        else:
            fixed = replace(run, pid=None, status=RunStatus.ERROR, finished_at=now, error=INTERRUPTED)
        log.warning("run %s was still running in the history; recorded as %s", run.run_id, fixed.status.value)
        recorder.record(fixed)
