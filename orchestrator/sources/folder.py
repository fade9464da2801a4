"""The triggers folder as a source: each trigger file becomes a ``file`` trigger on the queue, and the file is
removed once the runner has saved it; what happens next is the runner's business."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Container
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

from orchestrator.core.clock import Clock
from orchestrator.core.events import Receipt, Source, Trigger
from orchestrator.core.outlast import outlast_cancel
from orchestrator.sources.lane import Lane
from orchestrator.sources.takenlog import TakenLog
from orchestrator.sources.trigger_files import TakenFile, TriggerFolder
from orchestrator.sources.watch import FolderWatch
from orchestrator.sources.watchhub import WatchHub
from orchestrator.sources.writers import JUST_CREATED, UNHEARD_SECONDS, Writers

log = logging.getLogger(__name__)

T = TypeVar("T")

Looked = tuple[list[os.DirEntry[str]], list[str]]
"""A look's files to take now, and the names (with why) left for later."""


_Removal = concurrent.futures.Future[None]


class _Handed(NamedTuple):
    """A burst's batch handed over to the runner, its files not removed yet."""

    taken: list[TakenFile]
    receipt: Receipt
    now: datetime


class FolderSource:
    """Turns files in the triggers folder into ``file`` triggers, consuming each file.

    A look after one that left the folder empty (or with a few files still being written) is made right on the
    event loop, as long as the folder holds no more than :data:`LOOP_FILES` files: that is ``touch
    triggers/run-now``, and a trip to a worker thread would only add to its latency. Any other look lists and
    reads the folder on a worker thread, :data:`TAKE_BATCH` files at a time: each batch's triggers are handed
    over (one save of the state for the whole batch) while the next batch is read, and its files removed once
    they are saved. A burst of tens of thousands of files then costs the event loop (HTTP, event streams, the
    job's output) a few short turns.

    ``leave_alone``: names of entries that are never this folder's triggers, nor warned about: the folders of
    other jobs, when this is the default job's folder and theirs are in it (checked at each look, so a set that
    changes on a reload may be given)."""

    def __init__(
        self,
        folder: Path,
        queue: asyncio.Queue[Trigger],
        clock: Clock,
        hub: WatchHub,
        *,
        leave_alone: Container[str] = frozenset(),
    ) -> None:
        self._folder, self._queue, self._clock = TriggerFolder(folder, leave_alone=leave_alone), queue, clock
        self._writers = Writers(clock)
        self.watch = FolderWatch(folder, self._writers.event_delay, "triggers", hub)
        self.waiting = asyncio.Event()
        """Set while the source waits for the next event (no look at the folder going on or due)."""
        self._refused = False
        """The last look's triggers could not be saved: their files stay, and are looked at again soon."""
        self._emptied = False
        """The last look left no more than a few files (being written): the next is made on the loop."""
        self.first_look = asyncio.Event()
        """Set once the folder was first looked at (and what it held handed over), or that look failed."""
        self._worker = Lane()
        """The folder's work off the loop, one call at a time (on threads shared with the other jobs' folders).
        A cancel does not stop a call that has begun, so the folder's descriptor is closed in this lane too,
        after whatever it is doing (see :meth:`stop`); and the loop touches the folder only while no call of
        this lane is under way."""

    def start(self) -> None:
        self.watch.start()

    def stop(self) -> None:
        self.watch.stop()
        # Queued behind a look that a cancel cut short on our side but not on its thread: the asyncio future
        # of a call is done once cancelled, while the call itself may still be using the descriptor.
        with contextlib.suppress(RuntimeError):  # stopped before: the close is queued already
            self._worker.submit(self._folder.close)
        self._worker.shutdown(wait=False)

    async def _thread(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on the folder's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(work, *args))

    def rescan(self) -> None:
        """Look at the folder again even without an event (after each run: inotify can drop events)."""
        self.watch.changed.set()

    async def serve(self) -> None:
        """Take what is there at start, then once per burst of file events, and on a timer while the folder
        cannot be listed (making it readable again raises no event for the files waiting in it)."""
        self.watch.changed.set()
        first = True
        taken_log = TakenLog()
        retry_at: datetime | None = None
        paced_until: float | None = None
        while True:
            self.waiting.set()
            woken = await self._clock.wait(self.watch.changed, _earliest(taken_log.deadline, retry_at))
            self.waiting.clear()
            now = self._clock.now()
            taken_log.flush_if_due(now)
            if not woken and (retry_at is None or now < retry_at):
                continue
            if paced_until is not None:
                # A burst goes on: let its next files gather, to be taken in one look (and one save).
                await asyncio.sleep(paced_until - asyncio.get_running_loop().time())
            self.watch.changed.clear()
            self.watch.recover()
            try:
                many = await self._take_all(taken_log) > LOOP_FILES
                paced_until = asyncio.get_running_loop().time() + BURST_PACE if many else None
            finally:
                if first:
                    first = False
                    self.first_look.set()
            retry_soon = self._folder.retry_soon or self._refused
            retry_at = self._clock.now() + RELIST_INTERVAL if retry_soon else None

    async def _take_all(self, taken_log: TakenLog) -> int:
        """Take what the folder holds; how many files were looked at to be taken."""
        # Nothing is consumed until a batch is handed over: a cancel may cut a look or a read.
        looked = _look(self._folder, self._writers, LOOP_FILES) if self._emptied else None
        here = looked is not None
        entries, left = looked if looked is not None else await self._thread(_look_all, self._folder, self._writers)
        self._emptied = False
        if left:
            log.debug("%d trigger file(s) left for later: %r", len(left), left[:3])
        if any(name.endswith(f"({JUST_CREATED})") for name in left):
            # Their events bring the next look anyway; this is the net for events that never come. (One being
            # written is looked at again at its close, or by the deadline its creation set.)
            asyncio.get_running_loop().call_later(UNHEARD_SECONDS, self.watch.changed.set)
        self._refused = False
        took = await (self._take_here(entries, taken_log) if here else self._take_burst(entries, taken_log))
        # A file left for its writer's close (a ``touch`` seen before its close) leaves the next look on the loop.
        self._emptied = took and len(left) <= LOOP_FILES and not self._folder.retry_soon
        return len(entries)

    async def _take_here(self, entries: list[os.DirEntry[str]], taken_log: TakenLog) -> bool:
        """Take a few files on the loop (a handful of system calls each); ``False`` if they could not be saved."""
        taken = self._folder.read(entries)
        if not taken:
            return True
        now = self._clock.now()
        receipt = Receipt()
        if not await self._hand_over(_triggers(taken, now, receipt), receipt, taken):
            self._refused = True
            return False
        self._folder.remove(taken)
        self._taken(taken, now, taken_log)
        return True

    async def _take_burst(self, entries: list[os.DirEntry[str]], taken_log: TakenLog) -> bool:
        """Take ``entries`` batch by batch on the worker thread, each handed over once read, not once the one
        before is saved (the runner saves what is queued in one go); each batch's files are removed once saved.
        ``False`` if some were refused: their files stay, and no batch is handed over after that."""
        batches = [entries[start : start + TAKE_BATCH] for start in range(0, len(entries), TAKE_BATCH)]
        handed: collections.deque[_Handed] = collections.deque()
        removals: list[_Removal] = []
        reading = self._read_ahead(batches[0]) if batches else None
        try:
            for n in range(len(batches)):
                assert reading is not None
                taken, triggers, receipt, now = await reading
                reading = self._read_ahead(batches[n + 1]) if n + 1 < len(batches) else None
                if taken:
                    for trigger in triggers:
                        self._queue.put_nowait(trigger)
                    handed.append(_Handed(taken, receipt, now))
                while handed and (handed[0].receipt.settled or len(handed) > UNSAVED_BATCHES):  # saved: removed now
                    self._refused |= not await self._removed_once_saved(handed.popleft(), removals, taken_log)
                if self._refused:
                    break
            while handed:
                self._refused |= not await self._removed_once_saved(handed.popleft(), removals, taken_log)
        finally:
            if reading is not None:
                reading.cancel()  # only reads: nothing is lost if it never runs
            # Stopping: the runner (stopping after us) saves what is queued; the files of what is saved go now.
            for left in handed:
                if left.receipt.settled and await left.receipt.saved():
                    removals.append(self._worker.submit(self._folder.remove, left.taken))
            if removals:
                # Shielded from a cancel: the triggers are saved, and a file left behind would run them twice.
                await outlast_cancel(asyncio.gather(*(asyncio.wrap_future(each) for each in removals)))
        return not self._refused

    async def _removed_once_saved(self, handed: _Handed, removals: list[_Removal], taken_log: TakenLog) -> bool:
        """Once ``handed`` is saved, queue its files' removal (not awaited); ``False``: refused, they stay."""
        if not await handed.receipt.saved():
            return False
        removals.append(self._worker.submit(self._folder.remove, handed.taken))
        self._taken(handed.taken, handed.now, taken_log)
        return True

    def _read_ahead(
        self, batch: list[os.DirEntry[str]]
    ) -> asyncio.Future[tuple[list[TakenFile], list[Trigger], Receipt, datetime]]:
        """Read ``batch`` on the worker thread, its triggers made there too (a few microseconds each)."""
        receipt, now = Receipt(), self._clock.now()

        def read() -> tuple[list[TakenFile], list[Trigger], Receipt, datetime]:
            taken = self._folder.read(batch)
            return taken, _triggers(taken, now, receipt), receipt, now

        return asyncio.ensure_future(self._thread(read))

    async def _hand_over(self, triggers: list[Trigger], receipt: Receipt, taken: list[TakenFile]) -> bool:
        """Queue the triggers and wait until the runner has saved them; the caller then removes their files: a
        crash at any point leaves each either saved or still in the folder (then taken again at the next
        start). ``False`` if they could not be saved: the files stay for a later look."""
        for trigger in triggers:
            self._queue.put_nowait(trigger)
        try:
            return await receipt.saved()
        except asyncio.CancelledError:
            # Stopping: the runner, which stops after us, saves what is queued; remove the files if it has
            # by the time we go (else they are taken again at the next start, and coalesce there).
            if receipt.settled and await receipt.saved():
                await outlast_cancel(asyncio.ensure_future(self._thread(self._folder.remove, taken)))
            raise

    def _taken(self, taken: list[TakenFile], now: datetime, taken_log: TakenLog) -> None:
        if log.isEnabledFor(logging.DEBUG):
            for item in taken:
                log.debug("trigger file %r taken (reason: %s)", item.name, item.reason)
        taken_log.flush_if_due(now)
        taken_log.add(taken, now)


def _look_all(folder: TriggerFolder, writers: Writers) -> Looked:
    looked = _look(folder, writers, None)
    assert looked is not None
    return looked


def _look(folder: TriggerFolder, writers: Writers, limit: int | None) -> Looked | None:
    """The files to take now, and the names (with why) left for later: still being written, or so new that
    inotify has not told of them yet (a stat per file). ``None`` if there are more than ``limit``."""
    listed = folder.scan(limit)
    if listed is None:
        return None
    take: list[os.DirEntry[str]] = []
    left: list[str] = []
    for entry in listed:
        why = writers.leave(entry)
        if why is None:
            take.append(entry)
        else:
            left.append(f"{entry.name} ({why})")
    return take, left


def _triggers(taken: list[TakenFile], now: datetime, receipt: Receipt) -> list[Trigger]:
    return [Trigger(Source.FILE, now, item.reason, receipt=receipt) for item in taken]


TAKE_BATCH = 1024
"""Trigger files taken per trip to the worker thread (a few milliseconds of work there, and about as much on
the loop to hand them over): what a burst shows the runner at a time, in one save, and what a stop waits for."""

UNSAVED_BATCHES = 2
"""Batches of a burst handed over and not yet saved, at most (the next is read meanwhile): each of the runner's
turns on the event loop takes no more than this many batches."""

LOOP_FILES = 8
"""Files a look takes right on the event loop, when the last look left the folder empty."""

BURST_PACE = 0.1
"""Seconds from a look that found more than :data:`LOOP_FILES` files to the next: a burst's files are taken in
a few big batches, each one save of the state (an fsync on the loop), rather than in a save per handful."""

RELIST_INTERVAL = timedelta(seconds=2)
"""How often a triggers folder that cannot be listed or looked into (no permission, not a folder, a symlink),
or whose triggers could not be saved, is tried again."""


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)
