"""The producers: the interval timer and the triggers folder. Each only builds a :class:`Trigger` and puts it
on the queue; what happens next is the runner's business. (The HTTP source is a route in :mod:`web`.)"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
)

from orchestrator.core.clock import Clock
from orchestrator.core.events import Receipt, Source, Trigger
from orchestrator.job.process import outlast_cancel
from orchestrator.sources.trigger_files import TakenFile, TriggerFolder, is_trigger_name
from orchestrator.sources.watch import CONTENT_EVENTS, FolderWatch

log = logging.getLogger(__name__)

T = TypeVar("T")


class IntervalTimer:
    """Puts a ``timer`` trigger on the queue when the next automatic run is due.

    It sleeps until that moment or until :meth:`reschedule` is called (a run started or ended, a cooldown
    began), then looks again: no polling. ``due`` returns the due time (``None`` while a run is going: the
    due time is only known once it ends, when a cooldown may begin) and the inputs it was computed from;
    once the timer has fired for a set of inputs it waits for them to change, so it never asks twice for
    the same run.
    """

    def __init__(
        self,
        queue: asyncio.Queue[Trigger],
        clock: Clock,
        due: Callable[[], tuple[datetime | None, object]],
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._due = due
        self._wake = asyncio.Event()

    def reschedule(self) -> None:
        self._wake.set()

    async def serve(self) -> None:
        fired_for: object = None
        source = Source.STARTUP  # a run due at the first look was due before we started
        while True:
            self._wake.clear()
            due, inputs = self._due()
            if due is None or inputs == fired_for:
                await self._clock.wait(self._wake, None)
            elif due <= self._clock.now():
                await self._queue.put(Trigger(source, self._clock.now(), "scheduled"))
                fired_for = inputs
            else:
                await self._clock.wait(self._wake, due)
            source = Source.TIMER


class FolderSource:
    """Turns files in the triggers folder into ``file`` triggers, consuming each file.

    The folder is listed and its files are read on a worker thread, :data:`TAKE_BATCH` files at a time, each
    batch queued as it is read and its files removed once the runner has saved its triggers: a burst of tens
    of thousands of files takes seconds to consume, and the event loop (HTTP, event streams, the job's
    output) must keep answering meanwhile."""

    def __init__(self, folder: Path, queue: asyncio.Queue[Trigger], clock: Clock) -> None:
        self._folder = TriggerFolder(folder)
        self._queue = queue
        self._clock = clock
        self._writers = _Writers(clock)
        self.watch = FolderWatch(folder, self._writers.event_delay, "triggers", full_events=True)
        self.waiting = asyncio.Event()
        """Set while the source waits for the next event (no look at the folder going on or due)."""
        self._refused = False
        """The last look's triggers could not be saved: their files stay, and are looked at again soon."""
        self.first_look = asyncio.Event()
        """Set once the folder was first looked at (and what it held handed over), or that look failed."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trigger-folder")
        """The folder's work, one call at a time. A cancel does not stop a call that has begun, so the folder's
        descriptor is closed on this thread too, after whatever it is doing (see :meth:`stop`)."""

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
        taken_log = _TakenLog()
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

    async def _take_all(self, taken_log: _TakenLog) -> None:
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


LOG_WINDOW = timedelta(seconds=1)
"""After a line about taken trigger files, further takes are summed up for this long."""


class _TakenLog:
    """Logs taken trigger files: the first look that takes some gets a line at once; whatever is taken during
    the next :data:`LOG_WINDOW` is summed up in one line when it ends. A burst of thousands of files, for which
    the folder may be looked at hundreds of times, is a line or two a second, not one line per file."""

    def __init__(self) -> None:
        self._window_ends: datetime | None = None
        self._held = 0
        self._first_held = ""

    @property
    def deadline(self) -> datetime | None:
        """When a summary is due (``None``: nothing to sum up)."""
        return self._window_ends if self._held else None

    def flush_if_due(self, now: datetime) -> None:
        if self._held and self._window_ends is not None and now >= self._window_ends:
            log.info("%d more trigger files taken (the first: %r)", self._held, self._first_held)
            self._held, self._window_ends = 0, None

    def add(self, taken: list[TakenFile], now: datetime) -> None:
        if not taken:
            return
        if self._window_ends is not None and now < self._window_ends:
            if not self._held:
                self._first_held = taken[0].name
            self._held += len(taken)
            return
        # Names with %r: a name may hold a newline, which would forge a log line. (Reasons are clean.)
        if len(taken) == 1:
            log.info("trigger file %r taken (reason: %s)", taken[0].name, taken[0].reason)
        else:
            log.info("%d trigger files taken (the first: %r)", len(taken), taken[0].name)
        self._window_ends = now + LOG_WINDOW


UNCLOSED_SECONDS = 60.0
"""A regular file created in the folder is taken when its writer closes it, so that a slow writer's reason
is not cut short. This is the safety net for a creation whose close never comes (a hard link whose other
name was removed at once): the folder is looked at this long after the creation anyway."""


MAX_TRACKED_FILES = 10_000
"""Files tracked before the ones heard of more than :data:`UNCLOSED_SECONDS` ago are dropped."""
UNHEARD_SECONDS = 0.25
JUST_CREATED = "just created"
"""A file this new that no event has been heard for yet is left for the next look (which its events bring)."""


class _Writers:
    """What inotify told of each trigger file (on the observer thread): created and still being written, or
    complete (closed, renamed into place, a hard link). Not only the look for a file itself waits for its
    close: every look at the folder (after a run, for another file) leaves a file being written alone, and
    one so new that its events have not been heard yet, so a slow writer's reason is never cut short. A
    file left is looked at again when its close is heard; after :data:`UNCLOSED_SECONDS` without a close
    it is taken anyway."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._files: dict[str, tuple[bool, float]] = {}
        """name -> (still being written, when heard on the monotonic clock)."""
        self._lock = threading.Lock()

    def leave(self, entry: os.DirEntry[str]) -> str | None:
        """Why a look should leave ``entry`` for later (``None``: take it). Called on a worker thread."""
        with self._lock:
            heard = self._files.get(entry.name)
        if heard is not None:
            writing, at = heard
            return "being written" if writing and self._clock.monotonic() - at < UNCLOSED_SECONDS else None
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return None  # gone or unreadable: taking it says so
        if not stat.S_ISREG(info.st_mode):
            return None  # a link is whole when made; folders, FIFOs and devices are refused by the take
        # Nothing heard of it, and it is brand new: its events are still on their way (a busy machine).
        return JUST_CREATED if time.time() - info.st_ctime < UNHEARD_SECONDS else None

    def event_delay(self, event: FileSystemEvent) -> float | None:
        """When to look at the folder after ``event``: now, a little later, or not at all."""
        if event.is_directory:
            return None
        if event.event_type in (EVENT_TYPE_DELETED, EVENT_TYPE_MOVED):
            self._forget(os.fsdecode(event.src_path))  # gone from that name
        if event.event_type not in CONTENT_EVENTS:
            return None
        # For a move the new name decides: writing ``x.tmp`` and renaming it to ``x`` is the safe way.
        path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path)
        if not is_trigger_name(os.path.basename(path)):
            return None
        if event.event_type == EVENT_TYPE_MODIFIED:
            return None  # a writer is mid-way; its close follows
        if _gone(path):
            # Gone already: most often a file we just took, whose unlink raises an attrib event (the link
            # count). A look for it would only take whatever else is there, perhaps still half-written.
            self._forget(path)
            return None
        if event.event_type == EVENT_TYPE_CREATED and _is_new_file(path):
            self._heard(path, writing=True)
            return UNCLOSED_SECONDS  # its writer may still be writing: wait for the close
        if event.event_type in (EVENT_TYPE_CLOSED, EVENT_TYPE_MOVED, EVENT_TYPE_CREATED):
            self._heard(path, writing=False)  # written, renamed into place whole, or a link to written content
        return 0

    def _heard(self, path: str, *, writing: bool) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if len(self._files) >= MAX_TRACKED_FILES:  # deletes lost (an inotify overflow): forget the old
                self._files = {n: h for n, h in self._files.items() if now - h[1] < UNCLOSED_SECONDS}
            self._files[os.path.basename(path)] = (writing, now)

    def _forget(self, path: str) -> None:
        with self._lock:
            self._files.pop(os.path.basename(path), None)


def _gone(path: str) -> bool:
    """Known to be gone. A folder that cannot be looked into is not "gone": its look must fail, and say so."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _is_new_file(path: str) -> bool:
    """Whether ``path`` is a regular file that a writer has just created, rather than a hard link to content
    that exists already (which gives no close event: nobody writes through the new name)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    # A link adds a name (st_nlink > 1) and changes only the inode's ctime. A writer sets mtime and ctime
    # together, so ctime past mtime marks a link whose other name is already gone.
    return info.st_nlink == 1 and info.st_ctime_ns <= info.st_mtime_ns
