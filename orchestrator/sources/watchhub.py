"""The service's filesystem watches, shared: one watchdog observer per distinct folder and kind, however many
watches ask for that folder, and each event handed to the subscribers it concerns.

A job's folder watch (:mod:`orchestrator.sources.watch`) subscribes to the entries of one folder (all of them,
or only some, by name) and to the folder itself. A hundred jobs whose progress files sit in ``data/`` then
cost one observer there, not a hundred, and the watches on the folders' parents are shared the same way. A
folder given as a *tree* (the triggers folder, where each job but the default one has a sub-folder) is
watched recursively by one observer that serves the folder and every folder directly in it; watchdog adds a
watch for each sub-folder as it appears. The number of observers then depends on the folders, not the jobs.

Each observer keeps its own inotify instance and threads, as each watch had before: a burst in the triggers
folder, an overflow of its queue, or watchdog's 0.5 s wait to pair a rename out of it, does not reach the
progress files; and an observer that is replaced (its folder was deleted or replaced) takes its late events
with it, so none of them can be mistaken for news about the new folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_DELETED,
    EVENT_TYPE_EVENTS_LOST,
    EVENT_TYPE_MODIFIED,
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
from watchdog.observers.api import BaseObserver

try:
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # not Linux: the platform's observer, without full move events
    InotifyObserver = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

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

Handler = Callable[[FileSystemEvent], None]
"""Told of an event, on an observer's thread (or, for a replaced observer's hint, on the caller's)."""


def event_paths(event: FileSystemEvent) -> tuple[str, ...]:
    """The paths an event names (a move names two)."""
    paths = (os.fsdecode(event.src_path), os.fsdecode(event.dest_path))
    return tuple(p for p in paths if p)


@dataclass(frozen=True, slots=True)
class WatchKey:
    """What one observer watches: a folder, with its sub-folders or not, with full move events or not (a
    move from or to an unwatched folder as a move with one side empty, rather than a creation or deletion)."""

    path: str
    recursive: bool
    full_events: bool


@dataclass(frozen=True, slots=True, eq=False)
class Subscription:
    """One subscriber of a folder: told of events about the folder's entries named in ``names`` (``None``:
    every entry), and of events about the folder itself (its deletion; events lost). A folder's "modified"
    events are not passed on: they only echo a change of one of its entries, which has its own event."""

    key: WatchKey
    folder: str
    names: frozenset[str] | None
    handle: Handler


@dataclass(frozen=True, slots=True)
class _Folder:
    """One folder's subscribers (never changed once made)."""

    every: tuple[Subscription, ...]
    """Told of every entry."""
    named: dict[str, tuple[Subscription, ...]]
    """By entry name: told of that entry."""
    everyone: tuple[Subscription, ...]
    """Told of the folder itself."""

    def entry(self, name: str) -> tuple[Subscription, ...]:
        return self.every + self.named.get(name, ()) if self.named else self.every


class Routes:
    """Which subscribers of one observer an event concerns. Pure, and never changed once made: a new one is
    made when a subscriber comes or goes, on the loop's thread, while the observer's thread reads the last."""

    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        by_folder: dict[str, list[Subscription]] = {}
        for sub in subscriptions:
            by_folder.setdefault(sub.folder, []).append(sub)
        self._folders = {folder: _folder_of(subs) for folder, subs in by_folder.items()}

    def changed(self, folder: str, subscriptions: Sequence[Subscription]) -> Routes:
        """These routes with ``folder``'s subscribers now ``subscriptions`` (in the order they subscribed): only
        that folder's part is made again, so a hundred jobs subscribing one by one cost a hundred small steps."""
        folders = dict(self._folders)
        if subscriptions:
            folders[folder] = _folder_of(subscriptions)
        else:
            folders.pop(folder, None)
        routes = Routes()
        routes._folders = folders
        return routes

    def targets(self, event: FileSystemEvent) -> Sequence[Subscription]:
        """The subscribers to tell of ``event``, each once, in the order they subscribed to its folder."""
        if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
            # Half of all events, and only an echo: each change of an entry has its own event, which says which
            # entry. Passed on, it would wake every subscriber of a shared folder on each change.
            return ()
        if event.event_type == EVENT_TYPE_EVENTS_LOST:
            # Lost events may have been about any folder of this observer: every subscriber looks again.
            return [sub for folder in self._folders.values() for sub in folder.everyone]
        targets: list[Subscription] = []
        for path in event_paths(event):
            if (parent := self._folders.get(os.path.dirname(path))) is not None:
                targets.extend(parent.entry(os.path.basename(path)))
            if (own := self._folders.get(path)) is not None:
                targets.extend(own.everyone)
        return list(dict.fromkeys(targets)) if len(targets) > 1 else targets


def _folder_of(subs: Sequence[Subscription]) -> _Folder:
    named: dict[str, list[Subscription]] = {}
    for sub in subs:
        for name in sub.names or ():
            named.setdefault(name, []).append(sub)
    every = tuple(sub for sub in subs if sub.names is None)
    return _Folder(every, {n: tuple(s) for n, s in named.items()}, tuple(subs))


class _SharedWatch:
    """One observer and the subscribers it serves. Subscribers come and go on the event loop's thread; the
    observer's thread reads the routes, which are replaced whole on each change (never changed in place)."""

    def __init__(self, key: WatchKey) -> None:
        self.key = key
        self.subscriptions: list[Subscription] = []
        self._routes = Routes()
        self._observer: BaseObserver | None = None
        self._armed: tuple[int, int] | None = None
        """Device and inode of the folder the observer watches: what the path is checked against."""
        self._lost = False
        """The watched folder was deleted: the observer has stopped for good."""

    def add(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)
        self._reroute(sub.folder)

    def remove(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):  # removed before
            self.subscriptions.remove(sub)
        self._reroute(sub.folder)

    def _reroute(self, folder: str) -> None:
        self._routes = self._routes.changed(folder, [each for each in self.subscriptions if each.folder == folder])

    @property
    def stale(self) -> bool:
        """Whether the observer no longer watches the folder at the path (gone, replaced, or never armed)."""
        if self._observer is None or self._lost:
            return True
        try:
            info = os.stat(self.key.path)
        except OSError:
            return True
        return not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) != self._armed

    def arm(self) -> None:
        """(Re)start the observer on the folder now at the path; ``OSError`` if it cannot be watched."""
        self.disarm()
        self._lost = False
        info = os.stat(self.key.path)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(f"not a folder: {self.key.path}")
        observer = (
            InotifyObserver(generate_full_events=True)
            if self.key.full_events and InotifyObserver is not None
            else Observer()
        )
        observer.name = f"watch-{os.path.basename(self.key.path)}{'-tree' if self.key.recursive else ''}"
        observer.daemon = True
        try:
            observer.schedule(
                _Dispatch(self.dispatch), self.key.path, recursive=self.key.recursive, event_filter=KEPT_EVENTS
            )
            observer.start()
        except BaseException:
            # Scheduling may have opened an inotify instance and its reader: give them back.
            observer.stop()
            with contextlib.suppress(RuntimeError):  # never started
                observer.join(timeout=5)
            raise
        self._observer = observer
        self._armed = (info.st_dev, info.st_ino)

    def disarm(self) -> None:
        """Stop and join the observer (its queued events go with it); must run before the event loop closes."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    # Called on the observer's thread (and on the loop's, for a re-armed observer's hint). Anything raised here
    # would kill the observer, so nothing may be.
    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory and event.event_type == EVENT_TYPE_DELETED and event_paths(event) == (self.key.path,):
            self._lost = True
        for sub in self._routes.targets(event):
            try:
                sub.handle(event)
            except Exception:
                log.exception("ignoring a file event that could not be handled: %r", event)


class WatchHub:
    """Every folder watch of one service. ``trees``: folders watched recursively, by one observer that serves
    each folder directly in them too (the triggers folder of a service with several jobs). Started by its
    first subscriber; :meth:`stop` (after every watch has stopped) stops whatever is left."""

    def __init__(self, trees: Iterable[Path] = ()) -> None:
        self._trees = frozenset(os.path.normpath(os.fspath(tree)) for tree in trees)
        self._shared: dict[WatchKey, _SharedWatch] = {}

    def subscribe(
        self, folder: Path, handle: Handler, *, full_events: bool = False, names: frozenset[str] | None = None
    ) -> Subscription:
        """Tell ``handle`` of events about the entries of ``folder`` (only those in ``names``, if given) and
        about the folder itself. Raises ``OSError`` if the folder cannot be watched (missing, not a folder).

        An observer that no longer watches the folder at its path (it was deleted, moved aside, replaced) is
        started anew here, and each of its other subscribers is told that events may have been lost."""
        path = os.path.normpath(os.fspath(folder))
        key = self._key(path, full_events=full_events)
        shared = self._shared.get(key)
        if shared is None:
            shared = _SharedWatch(key)
            shared.arm()
            self._shared[key] = shared
        elif shared.stale:
            shared.arm()
            # Whatever happened between the old observer's end and now went unheard: the others look again.
            # (Not when the arm fails: each of them hears of its folder's trouble itself, and telling them would
            # have each try the same arm, then tell the others, and so on.)
            shared.dispatch(EventsLostEvent(key.path, is_directory=True))
        sub = Subscription(key, path, names, handle)
        shared.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop telling ``sub`` of events; the last subscriber of an observer stops it."""
        shared = self._shared.get(sub.key)
        if shared is None:
            return
        shared.remove(sub)
        if not shared.subscriptions:
            shared.disarm()
            del self._shared[sub.key]

    def stop(self) -> None:
        """Stop and join every observer left; must run before the event loop closes."""
        shared, self._shared = list(self._shared.values()), {}
        for watch in shared:
            watch.disarm()

    def follows(self, folder: Path) -> bool:
        """Whether ``folder`` is watched as a part of a tree: the tree's observer follows the folder's deletion
        and re-creation by itself (and may tell of a deletion after the folder is back), where a folder's own
        observer stops for good once its folder is deleted."""
        return os.path.dirname(os.path.normpath(os.fspath(folder))) in self._trees

    @property
    def observers(self) -> int:
        """How many observers run (each with its own inotify instance)."""
        return len(self._shared)

    def _key(self, path: str, *, full_events: bool) -> WatchKey:
        for folder in (path, os.path.dirname(path)):
            if folder in self._trees:
                # Everything in a tree comes with full events: one observer serves the whole tree.
                return WatchKey(folder, recursive=True, full_events=True)
        return WatchKey(path, recursive=False, full_events=full_events)


class _Dispatch(FileSystemEventHandler):
    def __init__(self, handle: Handler) -> None:
        self._handle = handle

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._handle(event)
