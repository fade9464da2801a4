"""A watch on one folder, turned into an asyncio "something may have changed" flag.

Events are hints, never data: the consumer clears :attr:`FolderWatch.changed`, then looks at the folder
itself. A burst of events therefore costs one look, and an event lost to an inotify overflow costs nothing
as long as the consumer also looks at start and after each run (and at once when the overflow is told).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_EVENTS_LOST,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
)

from orchestrator.core.streak import Streak
from orchestrator.sources.watchhub import Subscription, WatchHub, event_paths

log = logging.getLogger(__name__)

CONTENT_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_ATTRIB, EVENT_TYPE_CLOSED}
)
"""Event types that can mean new content. Opened and closed-without-write are left out on purpose: our
own reads raise them, and reacting to them would make a reader feed itself forever."""

PARENT_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED})
"""What, seen in the parent, can mean the watched folder is no longer the one at its path."""


class FolderWatch:
    """Watches one folder (not recursively) and sets :attr:`changed` when ``relevant(event)`` says so.

    ``relevant`` returns ``None`` (ignore the event), ``0`` (look now) or a delay in seconds (look then,
    for events that may be followed by a better one, such as a file created but not yet closed). ``names``,
    if given, are the only entries of the folder whose events ``relevant`` is asked about (a progress file in
    a folder shared with other jobs' files).

    The events come from ``hub``, which shares one watch among every subscriber of a folder. The folder itself
    may go away under us: deleted (its watch then stops for good), moved aside (the watch would follow it to
    its new name), or replaced by another folder or a file. The watch also subscribes to the parent's entry of
    the folder's name; on any such hint, or when events were lost, the consumer's next :meth:`recover`
    re-creates the folder if needed and subscribes again (the hub re-arms a watch whose folder is no longer the
    one at its path), so ``rm -r triggers && mkdir triggers`` or ``mv triggers old && mkdir triggers`` does not
    leave us deaf. Events delivered to the subscriptions of before a recovery are ignored: they are about the
    folder that was. (Another watch than the folder's own, so that renames next to the folder cannot delay the
    folder's own events by watchdog's 0.5 s move pairing.)
    """

    def __init__(
        self,
        folder: Path,
        relevant: Callable[[FileSystemEvent], float | None],
        name: str,
        hub: WatchHub,
        *,
        names: frozenset[str] | None = None,
    ) -> None:
        self.folder = folder
        self.name = name
        self._hub = hub
        self._on_loop = hub.on_loop
        self._names = names
        self.changed = asyncio.Event()
        self._relevant = relevant
        self._subscriptions: list[Subscription] = []
        self._current: object | None = None
        """The token of the current subscriptions: an event delivered to older ones is stale, and ignored."""
        self._lock = threading.Lock()
        """Makes "is this event's subscription current, then set a flag" one step against :meth:`recover`."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: tuple[int, int] | None = None
        """Device and inode of the folder being watched: what a hint from the parent is checked against."""
        self._lost = False
        """The watched folder was deleted: re-arm whatever the folder at our path looks like now."""
        self._maybe_moved = False
        """The parent saw something happen to an entry with the folder's name (or events were lost): re-arm if
        the folder at our path is not ours."""
        self._recovery_failed = Streak()
        self._later: set[int] = set()
        """Whole seconds of the loop's clock at which :attr:`changed` is already due to be set."""
        self._wake_due = False
        """A call that sets :attr:`changed` is on its way to the loop: events until it runs need no other."""
        self._calls = threading.Lock()  # guards the two above, shared by the observer's thread and the loop

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        token = object()
        with self._lock:
            self._current = token
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        # The parent first: should the folder itself not be watchable (a file sits there), we still hear
        # when it comes back.
        self._subscribe(self.folder.parent, token, self._on_parent_event, names=frozenset({self.folder.name}))
        self.folder.mkdir(exist_ok=True)
        info = os.stat(self.folder)
        # (Every watch has full events: a file moved in from another folder is a move, with its name.)
        self._subscribe(self.folder, token, self._on_event, names=self._names)
        self._watched = (info.st_dev, info.st_ino)
        log.debug("watching %s for %s", self.folder, self.name)

    def _subscribe(
        self,
        folder: Path,
        token: object,
        handle: Callable[[object, FileSystemEvent], None],
        *,
        names: frozenset[str] | None = None,
    ) -> None:
        sub = self._hub.subscribe(folder, lambda event: handle(token, event), names=names)
        self._subscriptions.append(sub)

    def stop(self) -> None:
        """Stop hearing of the folder (the hub stops a watch nobody else needs, before the loop closes)."""
        with self._lock:
            self._current = None
        subscriptions, self._subscriptions = self._subscriptions, []
        for sub in subscriptions:
            self._hub.unsubscribe(sub)

    def recover(self) -> bool:
        """Re-create the folder and re-arm the watch if it went away; ``True`` if that happened."""
        with self._lock:
            lost, moved, self._maybe_moved = self._lost, self._maybe_moved, False
        if not lost and not (moved and self._replaced()):
            return False
        if not self._recovery_failed.failing:
            log.warning("%s folder %s was removed or replaced; watching it again", self.name, self.folder)
        self.stop()
        # Cleared only now: the old subscriptions are void, so no late event of theirs can set them again.
        with self._lock:
            self._lost = self._maybe_moved = False
        try:
            self.start()
        except OSError as exc:
            # Say, a file now sits where the folder was. Stay deaf rather than die: the parent's watch or the
            # consumer's next look (after each run) tries again. Logged once per streak.
            with self._lock:
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

    # Called on the observer's thread (or the loop's, for a hub that hands events on there). Anything raised
    # here would kill the observer, so nothing may be.
    def _on_event(self, token: object, event: FileSystemEvent) -> None:
        try:
            if event.event_type == EVENT_TYPE_EVENTS_LOST:
                self._hint(token, moved=True)  # the folder may have been replaced meanwhile: check
            elif (
                event.event_type == EVENT_TYPE_DELETED
                and event.is_directory
                and event_paths(event) == (os.fspath(self.folder),)
            ):
                self._hint(token, lost=True)  # its watch has stopped for good: re-arm, whatever is at the path now
            elif (delay := self._relevant(event)) is not None:
                self._notify(delay)
        except Exception:
            log.exception("ignoring a file event that could not be handled: %r", event)

    def _on_parent_event(self, token: object, event: FileSystemEvent) -> None:
        try:
            if event.event_type == EVENT_TYPE_EVENTS_LOST or (
                event.event_type in PARENT_EVENTS and os.fspath(self.folder) in event_paths(event)
            ):
                self._hint(token, moved=True)
        except Exception:
            log.exception("ignoring a file event that could not be handled: %r", event)

    def _hint(self, token: object, *, lost: bool = False, moved: bool = False) -> None:
        with self._lock:
            if token is not self._current:
                return  # about the folder as it was before the last recovery
            self._lost |= lost
            self._maybe_moved |= moved
        self._notify(0)

    def _notify(self, delay: float) -> None:
        """Have :attr:`changed` set now, or ``delay`` seconds from now rounded up to a whole second of the loop's
        clock. Thousands of events wake the loop a handful of times, not once each: an event that comes while a
        call to set the flag is on its way to the loop is covered by that call, which runs after it."""
        loop = self._loop
        if loop is None:
            return
        call: Callable[[], None]
        with self._calls:
            if delay > 0:
                at = math.ceil(loop.time() + delay)  # the loop's clock may be read from any thread
                if at in self._later:
                    return
                self._later.add(at)
                call = functools.partial(self._set_later, at)
            else:
                if self._wake_due:
                    return
                self._wake_due = True
                call = self._wake
        if self._on_loop:
            call()  # told on the loop's own thread, in the turn that read the event
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing; nobody is left to tell
            loop.call_soon_threadsafe(call)

    def _wake(self) -> None:
        with self._calls:
            self._wake_due = False  # before the set: a later event asks for a call of its own
        self.changed.set()

    def _set_later(self, at: int) -> None:
        asyncio.get_running_loop().call_at(at, self._fire_later, at)

    def _fire_later(self, at: int) -> None:
        with self._calls:
            self._later.discard(at)
        self.changed.set()
