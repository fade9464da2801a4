"""The producers: the interval timer and the triggers folder. Each only builds a :class:`Trigger` and puts it
on the queue; what happens next is the runner's business. (The HTTP source is a route in :mod:`web`.)"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from watchdog.events import EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, FileSystemEvent

from orchestrator.clock import Clock
from orchestrator.events import Source, Trigger
from orchestrator.trigger_files import TakenFile, TriggerFolder, is_trigger_name
from orchestrator.watch import CONTENT_EVENTS, FolderWatch

log = logging.getLogger(__name__)


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
    """Turns files in the triggers folder into ``file`` triggers, consuming each file."""

    def __init__(self, folder: Path, queue: asyncio.Queue[Trigger], clock: Clock) -> None:
        self._folder = TriggerFolder(folder)
        self._queue = queue
        self._clock = clock
        self.watch = FolderWatch(folder, _trigger_event_delay, "triggers", full_events=True)

    def start(self) -> None:
        self.watch.start()

    def stop(self) -> None:
        self.watch.stop()

    def rescan(self) -> None:
        """Look at the folder again even without an event (after each run: inotify can drop events)."""
        self.watch.changed.set()

    async def serve(self) -> None:
        """Take what is there at start, then once per burst of file events."""
        self.watch.changed.set()
        taken_log = _TakenLog()
        while True:
            woken = await self._clock.wait(self.watch.changed, taken_log.deadline)
            now = self._clock.now()
            taken_log.flush_if_due(now)
            if not woken:
                continue
            self.watch.changed.clear()
            self.watch.recover()
            taken = self._folder.take_all()
            for item in taken:
                log.debug("trigger file %s taken (reason: %s)", item.name, item.reason)
                await self._queue.put(Trigger(Source.FILE, now, item.reason))
            taken_log.add(taken, now)


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
            log.info("%d more trigger files taken (the first: %s)", self._held, self._first_held)
            self._held, self._window_ends = 0, None

    def add(self, taken: list[TakenFile], now: datetime) -> None:
        if not taken:
            return
        if self._window_ends is not None and now < self._window_ends:
            if not self._held:
                self._first_held = taken[0].name
            self._held += len(taken)
            return
        if len(taken) == 1:
            log.info("trigger file %s taken (reason: %s)", taken[0].name, taken[0].reason)
        else:
            log.info("%d trigger files taken (the first: %s)", len(taken), taken[0].name)
        self._window_ends = now + LOG_WINDOW


CREATED_GRACE_SECONDS = 0.2
"""A regular file that was just created is normally taken when its writer closes it (so that
``echo reason > triggers/x`` keeps its reason); this is the fallback for a creation with no close
(a hard link)."""


def _trigger_event_delay(event: FileSystemEvent) -> float | None:
    """When to look at the folder after ``event``: now, a little later, or not at all."""
    if event.is_directory or event.event_type not in CONTENT_EVENTS:
        return None
    # For a move the new name decides: writing ``x.tmp`` and renaming it to ``x`` is the safe way.
    path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path)
    if not is_trigger_name(os.path.basename(path)):
        return None
    if event.event_type == EVENT_TYPE_MODIFIED:
        return None  # a writer is mid-way; its close follows
    if event.event_type == EVENT_TYPE_CREATED and _is_regular_file(path):
        return CREATED_GRACE_SECONDS  # its writer may still be writing: wait for the close
    return 0


def _is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
