"""Triggers that begin a run at once, in one save: when the run loop waits idle and a slot is free, the intake's
batch and the run it begins go to disk in the same write (the triggers on disk before their files are removed
or a 202 is sent, the run on disk before its job is spawned: each promise kept by that one save), and the loop
then runs that run. Otherwise the loop begins runs itself, from the pending triggers, in a save of its own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from orchestrator.core.clock import Clock
from orchestrator.core.records import MAX_RECORDED_TRIGGERS, RunRecord, State
from orchestrator.runner.ledger import Ledger
from orchestrator.runner.slots import Slots

Go = Callable[[], None]
"""Called once the state a :meth:`Handoff.offer` returned is saved: the run is the loop's to run."""


def new_run_id(now: datetime) -> str:
    """Sortable and unique enough: ``20260120T100000Z-3fa9c1``."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def next_run(state: State, now: datetime, job: str) -> RunRecord:
    """The run that ``state``'s pending triggers become, beginning ``now``."""
    return RunRecord(
        job=job,
        run_id=new_run_id(now),
        triggers=state.pending,
        started_at=now,
        trigger_count=state.pending_count,
        retry_of=state.retry_of,
        retried_beyond=state.retried_beyond,
    )


def begun(state: State, run: RunRecord) -> State:
    """``state`` with its pending triggers become the running ``run``."""
    return replace(state, current=run, pending=(), pending_count=0, retry_of=None, retried_beyond=0)


def given_back(state: State, run: RunRecord) -> State:
    """``state`` with ``run``, begun but never spawned, undone: its triggers pending again, ahead of any taken
    since."""
    return replace(
        state,
        current=None,
        pending=(*run.triggers, *state.pending)[:MAX_RECORDED_TRIGGERS],
        pending_count=run.trigger_count + state.pending_count,
        retry_of=run.retry_of,
        retried_beyond=run.retried_beyond + state.retried_beyond,
    )


class Handoff:
    """The run loop's side: whether it waits idle, and the run the intake began for it meanwhile."""

    def __init__(
        self,
        ledger: Ledger,
        slots: Slots,
        work: asyncio.Event,
        clock: Clock,
        *,
        job: str,
        stopping: Callable[[], bool],
        supervise: Callable[[], None] = lambda: None,
    ) -> None:
        self._ledger = ledger
        self._slots = slots
        self._work = work
        self._clock = clock
        self._job = job
        self._stopping = stopping
        self._supervise = supervise
        """Fresh supervision, before the run becomes visible: a cancel from then on is for this run."""
        self._idle = False
        self._ready: RunRecord | None = None

    def offer(self, state: State) -> tuple[State, Go] | None:
        """``state`` (the intake's, its batch taken, not saved yet) with its pending triggers begun as a run,
        and what hands that run to the loop once it is saved; ``None`` unless the loop would begin the run at
        once anyway: it waits idle for work, nothing runs, a slot is free and nobody waits for one."""
        if not self._idle or self._ready is not None or self._stopping() or state.current is not None:
            return None
        if not state.pending_count or not self._slots.free_now:
            return None
        run = next_run(state, self._clock.now(), self._job)

        def go() -> None:
            self._supervise()
            self._slots.take()
            self._ready = run
            self._work.set()

        return begun(state, run), go

    async def wait(self) -> RunRecord | None:
        """Wait idle for work; the run the intake began meanwhile, if any: its slot is the caller's to release.
        Cancelled with such a run in hand (the service stops), the run is given back first."""
        self._idle = True
        try:
            await self._work.wait()
        except asyncio.CancelledError:
            if self._ready is not None:
                self.give_back(self._ready)
                self._slots.release()
            raise
        finally:
            self._idle = False
        self._work.clear()
        run, self._ready = self._ready, None
        return run

    def give_back(self, run: RunRecord) -> None:
        """A run the intake began that will not be run (the service stops first): its triggers are pending
        again, and saved so, for the next start."""
        self._ready = None
        self._ledger.state = given_back(self._ledger.state, run)
        self._ledger.save()
