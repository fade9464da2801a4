"""watchdog's inotify observer, with each event's cost kept flat in a burst: a rename into a watched folder looks
for the rename's other half among the events not yet handed on by a lookup, not a scan of all of them; and the
deletion of a trigger file we remove ourselves is dropped as soon as it is read (``trigger_files.OwnRemovals``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from watchdog.events import FileSystemEvent
from watchdog.observers.api import BaseObserver

from orchestrator.sources.trigger_files import OWN_REMOVALS

try:
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # not Linux: the platform's observer, without full move events
    InotifyObserver = None  # type: ignore[assignment,misc]
try:
    from watchdog.observers.inotify import InotifyFullEmitter, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent
    from watchdog.observers.inotify_move_event_grouper import (
        GroupedInotifyEvent,
        InotifyMoveEventGrouper,
        PathedInotifyEvent,
    )
except ImportError:  # a watchdog built otherwise: its own emitter, as it comes
    InotifyMoveEventGrouper = None  # type: ignore[assignment,misc]


def new_inotify_observer() -> BaseObserver | None:
    """An inotify observer with full move events (``None``: no inotify here); with this module's emitter when
    the installed watchdog is built as the one it was written against (else watchdog's own)."""
    if InotifyObserver is None:
        return None
    observer = InotifyObserver(generate_full_events=True)
    if InotifyMoveEventGrouper is not None and hasattr(observer, "_emitter_class"):
        observer._emitter_class = _Emitter
    return observer


if InotifyMoveEventGrouper is not None:

    class _Grouper(InotifyMoveEventGrouper):
        """Pairs renames as watchdog's does, but asks its queue (a scan of every event in it, under its lock)
        only for a cookie that a rename out of a watched folder has put there. A burst of renames in from
        elsewhere (none has its other half here) then costs a set lookup each, not two scans of a queue that
        holds thousands of events while the emitter catches up."""

        def __init__(self) -> None:
            super().__init__()
            self._from_cookies: set[int] = set()
            """Cookies of the renames out that may still be queued: a superset, so a cookie not in it is not."""

        def put_event(self, event: PathedInotifyEvent) -> None:
            if event.ev.is_moved_from:
                self._from_cookies.add(event.ev.cookie)  # before it is queued: a lookup never misses it
            super().put_event(event)

        def read_event(self) -> GroupedInotifyEvent | None:
            event = super().read_event()
            if isinstance(event, PathedInotifyEvent) and event.ev.is_moved_from:
                self._from_cookies.discard(event.ev.cookie)  # after it left the queue
            return event

        def _group_moved_to_event(self, to_event: PathedInotifyEvent) -> GroupedInotifyEvent:
            cookie = to_event.ev.cookie
            if cookie not in self._from_cookies:
                return to_event
            grouped = super()._group_moved_to_event(to_event)
            self._from_cookies.discard(cookie)
            return grouped

        def get_queued_moved_from_event(self, cookie: int) -> PathedInotifyEvent | None:
            return super().get_queued_moved_from_event(cookie) if cookie in self._from_cookies else None

    @dataclass
    class _WatchGroup(InotifyWatchGroup):
        """watchdog's watch group, with :class:`_Grouper`; it drops the deletions of our own removals at once."""

        _move_event_grouper: InotifyMoveEventGrouper = field(default_factory=_Grouper, init=False)

        def on_event(self, event: InotifyEvent) -> None:
            if event.mask == InotifyConstants.IN_DELETE and OWN_REMOVALS:  # a file's (not a folder's) deletion
                with self._lock:
                    path = self._build_event_source_path(event) if self.is_active else None
                if path is not None and OWN_REMOVALS.claim(path):
                    return
            super().on_event(event)

    class _Emitter(InotifyFullEmitter):
        """watchdog's full emitter, with :class:`_Grouper`, and a filter that asks once per type of event."""

        def on_thread_start(self) -> None:
            self._kept: dict[type[FileSystemEvent], bool] = {}
            self._inotify = _WatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
            )

        def queue_event(self, event: FileSystemEvent) -> None:
            kept = self._kept.get(type(event))
            if kept is None:
                kinds = self._event_filter
                kept = self._kept[type(event)] = kinds is None or any(isinstance(event, kind) for kind in kinds)
            if kept:
                self._event_queue.put((event, self.watch))
