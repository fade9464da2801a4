"""The triggers folder as a source: each trigger file becomes a ``file`` trigger on the queue, and the file is
removed once the runner has saved it; what happens next is the runner's business."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Container
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

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


class FolderSource:
    """Turns files in the triggers folder into ``file`` triggers, consuming each file.

    The folder is listed and its files are read on a worker thread, :data:`TAKE_BATCH` files at a time, each
    batch queued as it is read and its files removed once the runner has saved its triggers: a burst of tens
    of thousands of files takes seconds to consume, and the event loop (HTTP, event streams, the job's
    output) must keep answering meanwhile.

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
        self._folder = TriggerFolder(folder, leave_alone=leave_alone)
        self._queue = queue
        self._clock = clock
        self._writers = Writers(clock)
        self.watch = FolderWatch(folder, self._writers.event_delay, "triggers", hub, full_events=True)
        self.waiting = asyncio.Event()
        """Set while the source waits for the next event (no look at the folder going on or due)."""
        self._refused = False
        """The last look's triggers could not be saved: their files stay, and are looked at again soon."""
        self.first_look = asyncio.Event()
        """Set once the folder was first looked at (and what it held handed over), or that look failed."""
        self._worker = Lane()
        """The folder's work, one call at a time (on threads shared with the other jobs' folders). A cancel does
        not stop a call that has begun, so the folder's descriptor is closed in this lane too, after whatever it
        is doing (see :meth:`stop`)."""

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
        while True:
            self.waiting.set()
            woken = await self._clock.wait(self.watch.changed, _earliest(taken_log.deadline, retry_at))
            self.waiting.clear()
            now = self._clock.now()
            taken_log.flush_if_due(now)
            if not woken and (retry_at is None or now < retry_at):
                continue
            self.watch.changed.clear()
            self.watch.recover()
            try:
                await self._take_all(taken_log)
            finally:
                if first:
                    first = False
                    self.first_look.set()
            retry_soon = self._folder.retry_soon or self._refused
            retry_at = self._clock.now() + RELIST_INTERVAL if retry_soon else None

    async def _take_all(self, taken_log: TakenLog) -> None:
        entries, left = await self._thread(self._scan)  # nothing is consumed yet: a cancel may cut it
        if left:
            log.debug("%d trigger file(s) left for later: %r", len(left), left[:3])
        if any(name.endswith(f"({JUST_CREATED})") for name in left):
            # Their events bring the next look anyway; this is the net for events that never come. (One being
            # written is looked at again at its close, or by the deadline its creation set.)
            asyncio.get_running_loop().call_later(UNHEARD_SECONDS, self.watch.changed.set)
        self._refused = False
        for start in range(0, len(entries), TAKE_BATCH):
            taken = await self._thread(self._folder.read, entries[start : start + TAKE_BATCH])
            if not taken:
                continue
            now = self._clock.now()
            if not await self._hand_over(taken, now):
                # Not saved (the data folder refuses writes): the files stay, and so do their triggers.
                self._refused = True
                return
            for item in taken:
                log.debug("trigger file %r taken (reason: %s)", item.name, item.reason)
            taken_log.flush_if_due(now)
            taken_log.add(taken, now)

    async def _hand_over(self, taken: list[TakenFile], now: datetime) -> bool:
        """Queue the batch's triggers, wait until the runner has saved them, then remove their files: a crash
        at any point leaves each either saved or still in the folder (then taken again at the next start).
        ``False`` if they could not be saved: the files stay for a later look."""
        receipt = Receipt()
        for item in taken:
            self._queue.put_nowait(Trigger(Source.FILE, now, item.reason, receipt=receipt))
        try:
            saved = await receipt.saved()
        except asyncio.CancelledError:
            # Stopping: the runner, which stops after us, saves what is queued; remove the files if it has
            # by the time we go (else they are taken again at the next start, and coalesce there).
            if receipt.settled and await receipt.saved():
                await outlast_cancel(asyncio.ensure_future(self._thread(self._folder.remove, taken)))
            raise
        if saved:
            # Shielded from a cancel: the triggers are saved, and a file left behind would run them twice.
            await outlast_cancel(asyncio.ensure_future(self._thread(self._folder.remove, taken)))
        return saved

    def _scan(self) -> tuple[list[os.DirEntry[str]], list[str]]:
        """The files to take now, and the names (with why) left for later: still being written, or so new
        that inotify has not told of them yet. On a worker thread (a stat per file)."""
        take: list[os.DirEntry[str]] = []
        left: list[str] = []
        for entry in self._folder.scan():
            why = self._writers.leave(entry)
            if why is None:
                take.append(entry)
            else:
                left.append(f"{entry.name} ({why})")
        return take, left


TAKE_BATCH = 256
"""Trigger files taken per trip to the worker thread (a few tens of milliseconds of work): what a burst
shows the runner at a time, and what a stop waits for."""

RELIST_INTERVAL = timedelta(seconds=2)
"""How often a triggers folder that cannot be listed or looked into (no permission, not a folder, a symlink),
or whose triggers could not be saved, is tried again."""


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)
