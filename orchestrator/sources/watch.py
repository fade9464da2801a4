"""A watchdog observer on one folder, turned into an asyncio "something may have changed" flag.

Events are hints, never data: the consumer clears :attr:`FolderWatch.changed`, then looks at the folder
itself. A burst of events therefore costs one look, and an event lost to an inotify overflow costs nothing
as long as the consumer also looks at start and after each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from orchestrator.core.streak import Streak

try:
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # not Linux: the platform's observer, without full move events
    InotifyObserver = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

CONTENT_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_ATTRIB, EVENT_TYPE_CLOSED}
)
"""Event types that can mean new content. Opened and closed-without-write are left out on purpose: our
own reads raise them, and reacting to them would make a reader feed itself forever."""

PARENT_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED})
"""What, seen in the parent, can mean the watched folder is no longer the one at its path."""


def event_paths(event: FileSystemEvent) -> tuple[str, ...]:
    """The paths an event names (a move names two)."""
    paths = (os.fsdecode(event.src_path), os.fsdecode(event.dest_path))
    return tuple(p for p in paths if p)


class FolderWatch:
    """Watches one folder (not recursively) and sets :attr:`changed` when ``relevant(event)`` says so.

    ``relevant`` returns ``None`` (ignore the event), ``0`` (look now) or a delay in seconds (look then,
    for events that may be followed by a better one, such as a file created but not yet closed).

    The folder itself may go away under us: deleted (watchdog's emitter then stops for good), moved aside
    (the watch would follow it to its new name), or replaced by another folder or a file. A second observer
    watches the parent for entries with the folder's name; on any such hint the consumer's next
    :meth:`recover` re-creates the folder if needed and re-arms the watch, so ``rm -r triggers && mkdir
    triggers`` or ``mv triggers old && mkdir triggers`` does not leave us deaf. (A separate observer, so that
    renames next to the folder cannot delay the folder's own events by watchdog's 0.5 s move pairing.)
    """

    def __init__(
        self,
        folder: Path,
        relevant: Callable[[FileSystemEvent], float | None],
        name: str,
        *,
        full_events: bool = False,
    ) -> None:
        self.folder = folder
        self.name = name
        self._full_events = full_events
        self.changed = asyncio.Event()
        self._relevant = relevant
        self._observers: list[BaseObserver] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: tuple[int, int] | None = None
        """Device and inode of the folder being watched: what a hint from the parent is checked against."""
        self._lost = False
        """The watched folder was deleted: re-arm whatever the folder at our path looks like now."""
        self._maybe_moved = False
        """The parent saw something happen to an entry with the folder's name: re-arm if it is not ours."""
        self._recovery_failed = Streak()
        self._later: set[int] = set()
        """Whole seconds of the loop's clock at which :attr:`changed` is already due to be set."""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        # The parent first: should the folder itself not be watchable (a file sits there), we still hear
        # when it comes back.
        self._observe(Observer(), "-parent", self._on_parent_event, self.folder.parent)
        self.folder.mkdir(exist_ok=True)
        info = os.stat(self.folder)
        # Full events: a file moved in from another folder is a move (with its name), not a bare "created".
        observer = (
            InotifyObserver(generate_full_events=True)
            if self._full_events and InotifyObserver is not None
            else Observer()
        )
        self._observe(observer, "", self._on_event, self.folder)
        self._watched = (info.st_dev, info.st_ino)
        log.debug("watching %s for %s", self.folder, self.name)

    def _observe(
        self, observer: BaseObserver, suffix: str, handle: Callable[[FileSystemEvent], None], path: Path
    ) -> None:
        observer.name = f"watch-{self.name}{suffix}"
        observer.daemon = True
        observer.schedule(_Handler(handle), os.fspath(path), recursive=False)
        observer.start()
        self._observers.append(observer)

    def stop(self) -> None:
        """Stop and join the observer threads; must run before the event loop closes."""
        observers, self._observers = self._observers, []
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join(timeout=5)

    def recover(self) -> bool:
        """Re-create the folder and re-arm the watch if it went away; ``True`` if that happened."""
        if not self._lost:
            if not self._maybe_moved:
                return False
            self._maybe_moved = False
            if not self._replaced():
                return False
        if not self._recovery_failed.failing:
            log.warning("%s folder %s was removed or replaced; watching it again", self.name, self.folder)
        self.stop()
        # Cleared only now: the old observers are joined, so no late event of theirs can set them again.
        self._lost = self._maybe_moved = False
        try:
            self.start()
        except OSError as exc:
            # Say, a file now sits where the folder was. Stay deaf rather than die: the parent's watch or the
            # consumer's next look (after each run) tries again. Logged once per streak.
            self._lost = True
            if self._recovery_failed.failed():
                log.error("cannot watch %s folder %s (%s); will try again", self.name, self.folder, exc)
            return True
        if self._recovery_failed.recovered():
            log.info("watching %s folder %s again", self.name, self.folder)
        return True

    def _replaced(self) -> bool:
        """Whether the path no longer leads to the folder we watch (gone, another folder, not a folder)."""
        try:
            info = os.stat(self.folder)
        except OSError:
            return True
        return not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) != self._watched

    # Called on the observer threads. Anything raised here would kill the observer, so nothing may be.
    def _on_event(self, event: FileSystemEvent) -> None:
        try:
            if (
                event.event_type == EVENT_TYPE_DELETED
                and event.is_directory
                and event_paths(event) == (os.fspath(self.folder),)
            ):
                self._lost = True
                self._notify(0)
            elif (delay := self._relevant(event)) is not None:
                self._notify(delay)
        except Exception:
            log.exception("ignoring a file event that could not be handled: %r", event)

    def _on_parent_event(self, event: FileSystemEvent) -> None:
        try:
            if event.event_type in PARENT_EVENTS and os.fspath(self.folder) in event_paths(event):
                self._maybe_moved = True
                self._notify(0)
        except Exception:
            log.exception("ignoring a file event that could not be handled: %r", event)

    def _notify(self, delay: float) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing; nobody is left to tell
            if delay > 0:
                loop.call_soon_threadsafe(self._set_later, delay)
            else:
                loop.call_soon_threadsafe(self.changed.set)

    def _set_later(self, delay: float) -> None:
        """Set :attr:`changed` ``delay`` seconds from now, rounded up to a whole second of the loop's clock:
        a burst of thousands of events asks for a handful of timers, not one each. On the loop."""
        assert self._loop is not None
        at = math.ceil(self._loop.time() + delay)
        if at not in self._later:
            self._later.add(at)
            self._loop.call_at(at, self._fire_later, at)

    def _fire_later(self, at: int) -> None:
        self._later.discard(at)
        self.changed.set()


class _Handler(FileSystemEventHandler):
    def __init__(self, handle: Callable[[FileSystemEvent], None]) -> None:
        self._handle = handle

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._handle(event)
