"""Taking triggers off the queue: each batch saved as pending before any sender hears back, every trigger
that arrives during a run folded into exactly one follow-up, and triggers that come while the service stops
kept for the next start."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from orchestrator.core.events import Source, Trigger
from orchestrator.core.outlast import outlast_cancel
from orchestrator.core.records import RunRecord, State
from orchestrator.runner.handoff import Go
from orchestrator.runner.ledger import Ledger

log = logging.getLogger(__name__)

OFF_LOOP_BATCH = 2
"""A batch of at least this many triggers (a burst of files) is saved on a worker thread, the loop free
meanwhile (while the disk takes a burst, one save may take a tenth of a second); a single trigger is saved on
the loop, soonest."""


def _without(state: State, refused: Sequence[Trigger]) -> State:
    """``state`` without ``refused``'s triggers among its pending ones (they stay with their senders)."""
    receipts = {id(t.receipt) for t in refused}
    pending = tuple(t for t in state.pending if id(t.receipt) not in receipts)
    return replace(state, pending=pending, pending_count=max(0, state.pending_count - len(refused)))


class Intake:
    """The one consumer of the trigger queue: takes triggers into the pending state and wakes the run loop."""

    def __init__(
        self,
        queue: asyncio.Queue[Trigger],
        ledger: Ledger,
        on_change: Callable[[], None],
        offer: Callable[[State], tuple[State, Go] | None] = lambda state: None,
    ) -> None:
        self._queue = queue
        self._ledger = ledger
        self._on_change = on_change
        self.offer = offer
        """The run loop's :meth:`~orchestrator.runner.handoff.Handoff.offer`: a run begun in the batch's save."""
        self.work = asyncio.Event()
        """Set when there may be something to run."""
        self.decided = asyncio.Event()
        self.decided.set()
        """Clear while a batch's save is on a worker thread: the run loop begins no run meanwhile, else a run
        could take triggers whose save is then refused (their files stay and would be taken again)."""
        self.triggers_received: collections.Counter[Source] = collections.Counter()
        """Every trigger taken, by source (for the metrics): each passes :meth:`take` exactly once."""

    async def serve(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Take whatever else is already queued in the same breath: one save, one wake-up.
            batch.extend(self._drain())
            if len(batch) >= OFF_LOOP_BATCH and self.offer(self._with(self._ledger.state, batch)) is None:
                # A burst: its save (tens of milliseconds while the disk takes the burst) off the loop.
                began = await outlast_cancel(asyncio.ensure_future(self.take_off_loop(batch)))
            else:
                began = self.take(batch, begin=True)
            self.work.set()
            if not began:  # a run begun says so itself, once its job is spawned
                self._on_change()

    def keep_left(self) -> None:
        """At the stop: a trigger accepted by a source in the last instant is on the queue only; it is kept
        for the next start (and pending triggers are saved once more)."""
        left = self._drain()
        if left:
            self.take(left)
        elif self._ledger.state.pending_count:
            self._ledger.save()

    def _drain(self) -> list[Trigger]:
        left = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        return left

    def take(self, batch: Sequence[Trigger], *, begin: bool = False) -> bool:
        """Add ``batch`` to the pending triggers and save the state before any sender is told: a trigger
        file is removed, and a 202 sent, only for a trigger that is on disk. Always saved, idle or not: a
        run about to start is no excuse, the crash may come first.

        ``begin``: if the run loop waits idle with a slot free, the pending triggers begin its run in the same
        save (see :mod:`orchestrator.runner.handoff`); ``True`` if they did.

        If the save fails, the triggers whose senders wait for the verdict are refused (they stay with
        their senders: the file stays in the folder, the request gets a 503), nothing begins, and the others
        (the timer's) run from memory, as everything does while the disk refuses writes."""
        ledger = self._ledger
        before = ledger.state
        for trigger in batch:
            ledger.state = ledger.state.with_trigger(trigger)
        waiting = any(t.receipt is not None for t in batch)
        offered = self.offer(ledger.state) if begin else None
        if offered is not None:
            taken_only, ledger.state = ledger.state, offered[0]
        saved = ledger.save()
        if offered is not None and not saved and waiting:
            ledger.state, offered = taken_only, None
        taken = list(batch)
        if not saved and waiting:
            taken = [t for t in batch if t.receipt is None]
            ledger.state = before
            for trigger in taken:
                ledger.state = ledger.state.with_trigger(trigger)
            if taken:
                ledger.save()
        self._count(taken, before.current, follow_up=not before.pending_count)
        if offered is not None:
            offered[1]()
        # After the run is handed over: the run loop's turn (which spawns the job) then comes before the senders'
        # (a file's removal and its log line, a 202), whose news can wait a turn and the job's start cannot.
        for trigger in batch:
            if trigger.receipt is not None:
                trigger.receipt.settle(saved)
        return offered is not None

    async def take_off_loop(self, batch: Sequence[Trigger]) -> bool:
        """:meth:`take`, the save written on a worker thread; no run is begun in it (the run loop begins its
        own). A save made meanwhile on the loop holds the batch too (the state only grows): if this one is
        refused and that one stored, the batch is on disk. ``False``: nothing began."""
        ledger = self._ledger
        before = ledger.state
        ledger.state = taken = self._with(before, batch)
        self.decided.clear()
        try:
            saved = await ledger.save_off_loop()
        finally:
            self.decided.set()
        waiting = [t for t in batch if t.receipt is not None]
        if not saved and waiting:
            if ledger.state is taken:  # nothing changed meanwhile: as :meth:`take` does
                ledger.state = self._with(before, [t for t in batch if t.receipt is None])
                if ledger.state.pending_count > before.pending_count:
                    ledger.save()
            else:
                saved = ledger.save()  # the state moved on, holding the batch: a newer save may go through
                if not saved:
                    ledger.state = _without(ledger.state, waiting)
        for trigger in waiting:
            assert trigger.receipt is not None
            trigger.receipt.settle(saved)
        self._count(
            batch if saved else [t for t in batch if t.receipt is None],
            before.current,
            follow_up=not before.pending_count,
        )
        return False

    @staticmethod
    def _with(state: State, triggers: Sequence[Trigger]) -> State:
        return state.with_triggers(triggers)

    def _count(self, taken: Sequence[Trigger], current: RunRecord | None, *, follow_up: bool) -> None:
        for n, trigger in enumerate(taken):
            self.triggers_received[trigger.source] += 1
            if current is not None and n == 0 and follow_up:
                # Logged once per follow-up, not once per trigger: a burst of files is one line.
                log.info(
                    "%s trigger during run %s%s: a follow-up run is queued",
                    trigger.source.value,
                    current.run_id,
                    f" ({trigger.reason})" if trigger.reason else "",
                )
