"""The service's filesystem watches, shared: one observer per hub, one watch on it per distinct folder, however
many subscribers ask for that folder, and each event handed to the subscribers it concerns. The progress files'
hub runs on watchdog's observer (:class:`SharedObserver`); the triggers folders' on one inotify instance whose
events are handed on on the event loop (:class:`~orchestrator.sources.loopobserver.LoopObserver`, never recursive).

A job's folder watch (:mod:`orchestrator.sources.watch`) subscribes to the entries of one folder (all of them,
or only some, by name) and to the folder itself. A hundred jobs whose progress files sit in ``data/`` then
cost one watch there, not a hundred, and the watches on the folders' parents are shared the same way (the
triggers folder is the parent of every other job's triggers folder). On watchdog's observer the threads depend
on neither the folders nor the jobs: the observer's dispatcher, its inotify reader and dispatcher, and one
emitter per watch.

Each watchdog watch keeps its own emitter and its own pairing of renames: watchdog's 0.5 s wait to pair a rename
out of one folder holds back only that folder's events. An inotify overflow (rare: both observers drain the
kernel's queue into their own unbounded one on a thread) is told to every watch, whose subscribers then look
again. A watch that is replaced (its folder was deleted or replaced) takes its late
events with it: the observer hands an event only to the watch that queued it while that watch is current, so
none of them can be mistaken for news about the new folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchdog.events import (
    EVENT_TYPE_DELETED,
    EVENT_TYPE_EVENTS_LOST,
    EVENT_TYPE_MODIFIED,
    EventsLostEvent,
    FileSystemEvent,
)

from orchestrator.sources.observer import Handler, SharedObserver

log = logging.getLogger(__name__)


class Observing(Protocol):
    """What watches the folders: watchdog's observer on its threads (:class:`SharedObserver`), or one inotify
    instance whose events are handed on on the event loop
    (:class:`~orchestrator.sources.loopobserver.LoopObserver`)."""

    @property
    def running(self) -> bool: ...

    @property
    def on_loop(self) -> bool:
        """Whether handlers are called on the event loop's thread (else on a thread of the observer's)."""
        ...

    def schedule(self, path: str, *, recursive: bool, handle: Handler) -> object:
        """Watch ``path``, telling ``handle``; ``OSError`` if it cannot be watched."""
        ...

    def unschedule(self, watch: object) -> None: ...


def event_paths(event: FileSystemEvent) -> tuple[str, ...]:
    """The paths an event names (a move names two)."""
    paths = (os.fsdecode(event.src_path), os.fsdecode(event.dest_path))
    return tuple(p for p in paths if p)


@dataclass(frozen=True, slots=True)
class WatchKey:
    """What one watch watches: a folder (not its sub-folders). Every watch has full move events (a move from or
    to an unwatched folder is a move with one side empty, rather than a creation or deletion)."""

    path: str


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
    """Which subscribers of one watch an event concerns. Pure, and never changed once made: a new one is
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
            # Lost events may have been about any folder of this watch: every subscriber looks again.
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
    """One watch and the subscribers it serves. Subscribers come and go on the event loop's thread; the
    observer's thread reads the routes, which are replaced whole on each change (never changed in place)."""

    def __init__(self, key: WatchKey, observer: Observing) -> None:
        self.key = key
        self.subscriptions: list[Subscription] = []
        self._routes = Routes()
        self._observer = observer
        self._watch: object | None = None
        self._armed: tuple[int, int] | None = None
        """Device and inode of the folder the watch watches: what the path is checked against."""
        self._lost = False
        """The watched folder was deleted: the watch's emitter has stopped for good."""

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
        """Whether the watch no longer watches the folder at the path (gone, replaced, or never armed)."""
        if self._watch is None or self._lost:
            return True
        try:
            info = os.stat(self.key.path)
        except OSError:
            return True
        return not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) != self._armed

    def arm(self) -> None:
        """(Re)start the watch on the folder now at the path; ``OSError`` if it cannot be watched."""
        self.disarm()
        self._lost = False
        info = os.stat(self.key.path)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(f"not a folder: {self.key.path}")
        self._watch = self._observer.schedule(self.key.path, recursive=False, handle=self.dispatch)
        self._armed = (info.st_dev, info.st_ino)

    def disarm(self) -> None:
        """Stop the watch (its queued events go with it); must run before the event loop closes."""
        watch, self._watch = self._watch, None
        if watch is not None:
            self._observer.unschedule(watch)

    # Called on the observer's thread (and on the loop's, for a re-armed watch's hint). Anything raised here
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
    """Folder watches of one service, on one observer (watchdog's unless another is given). Started by its first
    subscriber; :meth:`stop` (after every watch has stopped) stops whatever is left."""

    def __init__(self, *, observer: Observing | None = None) -> None:
        self._shared: dict[WatchKey, _SharedWatch] = {}
        self._observer = observer or SharedObserver()

    @property
    def on_loop(self) -> bool:
        """Whether subscribers are told on the event loop's thread (else on an observer's thread)."""
        return self._observer.on_loop

    def subscribe(self, folder: Path, handle: Handler, *, names: frozenset[str] | None = None) -> Subscription:
        """Tell ``handle`` of events about the entries of ``folder`` (only those in ``names``, if given) and
        about the folder itself. Raises ``OSError`` if the folder cannot be watched (missing, not a folder).

        A watch that no longer watches the folder at its path (it was deleted, moved aside, replaced) is
        started anew here, and each of its other subscribers is told that events may have been lost."""
        path = os.path.normpath(os.fspath(folder))
        key = WatchKey(path)
        shared = self._shared.get(key)
        if shared is None:
            shared = _SharedWatch(key, self._observer)
            shared.arm()
            self._shared[key] = shared
        elif shared.stale:
            shared.arm()
            # Whatever happened between the old watch's end and now went unheard: the others look again.
            # (Not when the arm fails: each of them hears of its folder's trouble itself, and telling them would
            # have each try the same arm, then tell the others, and so on.)
            shared.dispatch(EventsLostEvent(key.path, is_directory=True))
        sub = Subscription(key, path, names, handle)
        shared.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop telling ``sub`` of events; the last subscriber of a watch stops it (the last watch, the observer)."""
        shared = self._shared.get(sub.key)
        if shared is None:
            return
        shared.remove(sub)
        if not shared.subscriptions:
            shared.disarm()
            del self._shared[sub.key]

    def stop(self) -> None:
        """Stop every watch left, and the observer with the last; must run before the event loop closes."""
        shared, self._shared = list(self._shared.values()), {}
        for watch in shared:
            watch.disarm()

    @property
    def observers(self) -> int:
        """How many observers run: one while any folder is watched (with one inotify instance), else none."""
        return int(self._observer.running)

    @property
    def watches(self) -> int:
        """How many folders are watched (on watchdog's observer, each by an emitter thread of its own)."""
        return len(self._shared)
