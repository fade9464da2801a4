"""A watchdog observer on one folder, turned into an asyncio "something may have changed" flag.

Events are hints, never data: the consumer clears :attr:`FolderWatch.changed`, then looks at the folder
itself. A burst of events therefore costs one look, and an event lost to an inotify overflow costs nothing
as long as the consumer also looks at start and after each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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


def event_paths(event: FileSystemEvent) -> tuple[str, ...]:
    """The paths an event names (a move names two)."""
    paths = (os.fsdecode(event.src_path), os.fsdecode(event.dest_path))
    return tuple(p for p in paths if p)


class FolderWatch:
    """Watches one folder (not recursively) and sets :attr:`changed` when ``relevant(event)`` says so.

    ``relevant`` returns ``None`` (ignore the event), ``0`` (look now) or a delay in seconds (look then,
    for events that may be followed by a better one, such as a file created but not yet closed).

    If the folder itself is deleted, watchdog's emitter stops for good; the watch notices, re-creates the
    folder and schedules a fresh emitter, so a ``rm -r triggers && mkdir triggers`` does not leave us deaf.
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
        self._observer: BaseObserver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost = False
        self._recovery_failed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.folder.mkdir(parents=True, exist_ok=True)
        # Full events: a file moved in from another folder is a move (with its name), not a bare "created".
        observer = (
            InotifyObserver(generate_full_events=True)
            if self._full_events and InotifyObserver is not None
            else Observer()
        )
        observer.name = f"watch-{self.name}"
        observer.daemon = True
        observer.schedule(_Handler(self), os.fspath(self.folder), recursive=False)
        observer.start()
        self._observer = observer
        log.debug("watching %s for %s", self.folder, self.name)

    def stop(self) -> None:
        """Stop and join the observer thread; must run before the event loop closes."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def recover(self) -> bool:
        """Re-create the folder and re-arm the watch if it was deleted; ``True`` if that happened."""
        if not self._lost:
            return False
        self._lost = False
        if not self._recovery_failed:
            log.warning("%s folder %s was removed; re-creating it and watching again", self.name, self.folder)
        self.stop()
        try:
            self.start()
        except OSError as exc:
            # Say, a file now sits where the folder was. Stay deaf rather than die; the consumer's next
            # look (after each run) tries again. Logged once per streak.
            self._lost = True
            if not self._recovery_failed:
                log.error(
                    "cannot watch %s folder %s again (%s); will retry after the next run", self.name, self.folder, exc
                )
            self._recovery_failed = True
            return True
        if self._recovery_failed:
            log.info("watching %s folder %s again", self.name, self.folder)
        self._recovery_failed = False
        return True

    # Called on the observer thread. Anything raised here would kill the observer, so nothing may be.
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

    def _notify(self, delay: float) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing; nobody is left to tell
            if delay > 0:
                loop.call_soon_threadsafe(loop.call_later, delay, self.changed.set)
            else:
                loop.call_soon_threadsafe(self.changed.set)


class _Handler(FileSystemEventHandler):
    def __init__(self, watch: FolderWatch) -> None:
        self._watch = watch

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._watch._on_event(event)
