"""The service's one watchdog observer: every folder watch is a watch scheduled on it (each with an emitter
thread of its own), and each event goes to the handler of the watch that queued it, while that watch is current.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, EventDispatcher, EventQueue, ObservedWatch

try:
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # not Linux: the platform's observer, without full move events
    InotifyObserver = None  # type: ignore[assignment,misc]

KEPT_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,  # also what asks inotify for attribute changes: a touch of a file there already
    FileAttribEvent,
    DirAttribEvent,
    FileClosedEvent,
    FileOpenedEvent,
    EventsLostEvent,
]
"""The events an observer passes on. Left out, so that inotify does not even queue them: a folder's "modified"
(an echo of a change of one of its entries, which has its own event) and a file closed without a write (each
read of a file raises one). A burst of ten thousand trigger files, each read by us, would raise 40,000 of them."""

GIL_SWITCH_SECONDS = 0.001
"""How long a thread keeps the GIL once another asks for it (Python's default: 5 ms), set for the process when
the observer starts: its threads and the triggers folders' hold the GIL in turns through a burst of files, and
the event loop, waiting its turn behind each, kept an HTTP request waiting tens of milliseconds at the default."""

Handler = Callable[[FileSystemEvent], None]
"""Told of an event, on an observer's thread (or, for a replaced observer's hint, on the caller's)."""


class SharedObserver:
    """The service's one observer, started with its first watch and stopped with its last. It hands each event
    only to the watch that queued it, and only while that watch is current: a watch replaced by another on the
    same folder (which watchdog would take for the same one) leaves its late events behind."""

    def __init__(self) -> None:
        self._observer: BaseObserver | None = None
        self._current: dict[ObservedWatch, tuple[ObservedWatch, Handler]] = {}
        self._lock = threading.Lock()
        """Makes "schedule, then say which handler is the watch's" one step against the dispatch. Never held
        while waiting for the observer's thread, which takes it for each event."""

    on_loop = False
    """Handlers are called on the observer's thread."""

    @property
    def running(self) -> bool:
        return self._observer is not None

    def schedule(self, path: str, *, recursive: bool, handle: Handler) -> ObservedWatch:
        """Watch ``path`` and tell ``handle`` of its events; ``OSError`` if it cannot be watched."""
        try:
            return self._schedule(path, recursive=recursive, handle=handle)
        except BaseException:
            with self._lock:
                idle = self._idle()
            _stop(idle)  # nothing left running when the first watch fails
            raise

    def _schedule(self, path: str, *, recursive: bool, handle: Handler) -> ObservedWatch:
        with self._lock:
            observer = self._observer
            if observer is None:
                # Full move events: a file moved in from an unwatched folder is a move, with its name.
                observer = InotifyObserver(generate_full_events=True) if InotifyObserver is not None else Observer()
                sys.setswitchinterval(GIL_SWITCH_SECONDS)
                observer.name = "watches"
                observer.daemon = True
                observer.dispatch_events = self._dispatch  # type: ignore[method-assign]
                observer.start()
                self._observer = observer
            # Starts the watch's emitter: its events may reach the dispatch before the line below, which waits
            # for the lock, so none is dropped.
            watch = observer.schedule(_UNUSED, path, recursive=recursive, event_filter=KEPT_EVENTS)
            self._current[watch] = (watch, handle)
            return watch

    def unschedule(self, watch: object) -> None:
        """Stop the watch (its emitter is joined; its queued events are dropped); the last one stops all."""
        assert isinstance(watch, ObservedWatch)
        with self._lock:
            if (current := self._current.get(watch)) is not None and current[0] is watch:
                del self._current[watch]
            observer = self._observer
            idle = self._idle()
        if observer is not None:
            with contextlib.suppress(KeyError):  # its emitter never started
                observer.unschedule(watch)
        _stop(idle)

    def _idle(self) -> BaseObserver | None:
        """With no watch left, the observer, now no longer ours, for :func:`_stop` (outside the lock)."""
        if self._current:
            return None
        observer, self._observer = self._observer, None
        return observer

    # The observer's own loop body, on its thread: one event from the queue to its watch's handler, if current.
    def _dispatch(self, event_queue: EventQueue) -> None:
        entry = event_queue.get(block=True)
        try:
            if entry is EventDispatcher.stop_event:
                return
            event, watch = entry
            with self._lock:
                current = self._current.get(watch)
            if current is not None and current[0] is watch:
                current[1](event)
        finally:
            event_queue.task_done()


_UNUSED = FileSystemEventHandler()
"""What watchdog's ``schedule`` asks for; the events go to each watch's handler by :meth:`SharedObserver._dispatch`."""


def _stop(observer: BaseObserver | None) -> None:
    if observer is not None:
        observer.stop()
        with contextlib.suppress(RuntimeError):  # never started
            observer.join(timeout=5)
