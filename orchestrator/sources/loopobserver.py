"""Folder watches read on the event loop's own thread: one inotify instance whose descriptor the loop polls with
its other sockets, each event turned into watchdog's event and handed to its watch's handler right there.

The triggers folders are watched this way. A ``touch`` there is then heard in the loop's next turn, not after
watchdog's inotify reader, its dispatcher, the watch's emitter and the observer's dispatcher have each taken
their turn on a thread (and the GIL), and its trigger is taken in the same turn. A burst's events are read a
buffer at a time, each buffer one short turn of the loop. The progress files keep watchdog's observer.

What it gives up against watchdog's inotify observer, on purpose: watches are never recursive (each job's
folder is a watch of its own; the folders' parents are watches too), and renames are not paired: a rename out
of a watched folder is a move with no destination, a rename in one with no source, and a rename inside a folder
is both, one after the other. That is all a folder watch needs (it looks at the folder itself), and it means no
0.5 s wait for a rename's other half. Like watchdog's, the watch of a symlink does not follow it.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

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
)
from watchdog.observers.inotify_c import InotifyConstants as In
from watchdog.observers.inotify_c import WatchDescriptor, inotify_add_watch, inotify_init, inotify_rm_watch

from orchestrator.sources.observer import Handler
from orchestrator.sources.trigger_files import OWN_REMOVALS

log = logging.getLogger(__name__)

MASK = (
    In.IN_CREATE
    | In.IN_DELETE
    | In.IN_MOVED_FROM
    | In.IN_MOVED_TO
    | In.IN_ATTRIB
    | In.IN_MODIFY
    | In.IN_OPEN
    | In.IN_CLOSE_WRITE
    | In.IN_DELETE_SELF
    | In.IN_DONT_FOLLOW
    | In.IN_EXCL_UNLINK
)
"""What a watch asks inotify for: what ``observer.KEPT_EVENTS`` asks watchdog for (no close without a write: each
of our own reads raises one), the watched folder's own deletion, and nothing of a file once it is unlinked."""

READ_BYTES = 64 * 1024
"""Read per turn of the loop: about 1,500 events of short names, a few milliseconds of the loop's time."""

_HEADER = struct.Struct("iIII")


@dataclass(frozen=True, slots=True, eq=False)
class LoopWatch:
    """One scheduled watch: its inotify watch descriptor, its folder, and whom to tell."""

    wd: int
    path: str
    handle: Handler


class LoopObserver:
    """Watches folders (not recursively) with one inotify instance, read on the running event loop's thread,
    opened with the first watch and closed with the last. Schedule and unschedule on that thread too.

    Several watches of one folder (the same inode) share the kernel's watch; each is told of its events, by the
    path it was scheduled with. Events queued for a watch unscheduled since are dropped, as are a removed
    watch's: the kernel never hands its descriptor to another watch of this instance soon after."""

    on_loop = True
    """Handlers are called on the loop's thread."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[int, list[LoopWatch]] = {}

    @property
    def running(self) -> bool:
        return self._fd is not None

    def schedule(self, path: str, *, recursive: bool, handle: Handler) -> LoopWatch:
        """Watch the folder at ``path`` and tell ``handle`` of its events; ``OSError`` if it cannot be watched."""
        if recursive:
            raise ValueError("a watch read on the loop is never recursive")
        fd = self._open()
        try:
            wd = inotify_add_watch(fd, os.fsencode(path), MASK)
            if wd == -1:
                code = ctypes.get_errno()
                raise OSError(code, _why(code), path)
        except BaseException:
            self._close_if_idle()
            raise
        watch = LoopWatch(wd, path, handle)
        self._watches.setdefault(wd, []).append(watch)
        return watch

    def unschedule(self, watch: object) -> None:
        """Stop telling the watch's handler; the kernel's watch goes with the last watch of its folder, and the
        instance with the last watch."""
        assert isinstance(watch, LoopWatch)
        watches = self._watches.get(watch.wd)
        if watches is not None and watch in watches:
            watches.remove(watch)
            if not watches:
                del self._watches[watch.wd]
                if self._fd is not None:
                    inotify_rm_watch(
                        self._fd, WatchDescriptor(watch.wd)
                    )  # fails (ignored) once the kernel removed it itself
        self._close_if_idle()

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        loop = asyncio.get_running_loop()
        fd = inotify_init()
        if fd == -1:
            code = ctypes.get_errno()
            raise OSError(code, _why(code))
        os.set_inheritable(fd, False)  # (close-on-exec: a job never gets it)
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)
        self._fd, self._loop = fd, loop
        return fd

    def _close_if_idle(self) -> None:
        if self._watches or self._fd is None:
            return
        fd, loop, self._fd, self._loop = self._fd, self._loop, None, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(fd)
        os.close(fd)

    def _read(self) -> None:
        """One buffer of events, each handed to its watches; the loop calls again while more wait."""
        if self._fd is None:
            return
        try:
            buffer = os.read(self._fd, READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        for wd, mask, name in _parse(buffer):
            if mask & In.IN_Q_OVERFLOW:
                # Dropped by the kernel (the loop fell far behind): every watch looks again.
                for each in [watch for watches in self._watches.values() for watch in watches]:
                    _tell(each, EventsLostEvent(each.path, is_directory=True))
            elif mask & In.IN_IGNORED:
                self._watches.pop(wd, None)  # the kernel's watch is gone (its folder was deleted, or unscheduled)
            elif (watches := self._watches.get(wd)) is not None:
                for watch in tuple(watches):
                    if (event := _event(watch.path, mask, name)) is not None:
                        _tell(watch, event)


def _parse(buffer: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Each ``struct inotify_event`` in ``buffer``: its watch, its mask, its name (``b""`` for the folder's own)."""
    offset, end = 0, len(buffer)
    while offset + 16 <= end:
        wd, mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
        start = offset + 16
        offset = start + length
        yield wd, mask, buffer[start:offset].rstrip(b"\0")


def _event(folder: str, mask: int, name: bytes) -> FileSystemEvent | None:
    """watchdog's event for an inotify event of a watch on ``folder``; ``None`` for what nobody is told of."""
    if not name:
        # About the folder itself: only its deletion matters (its opens and attributes are our own looks).
        return DirDeletedEvent(folder) if mask & In.IN_DELETE_SELF else None
    is_dir = bool(mask & In.IN_ISDIR)
    if mask & In.IN_DELETE and not is_dir and OWN_REMOVALS:
        path_bytes = os.fsencode(folder) + b"/" + name
        if OWN_REMOVALS.claim(path_bytes):
            return None  # a trigger file we took: nobody needs the news
    path = os.path.join(folder, os.fsdecode(name))
    if mask & In.IN_CREATE:
        return DirCreatedEvent(path) if is_dir else FileCreatedEvent(path)
    if mask & In.IN_DELETE:
        return DirDeletedEvent(path) if is_dir else FileDeletedEvent(path)
    if mask & In.IN_MOVED_TO:
        return DirMovedEvent("", path) if is_dir else FileMovedEvent("", path)
    if mask & In.IN_MOVED_FROM:
        return DirMovedEvent(path, "") if is_dir else FileMovedEvent(path, "")
    if mask & In.IN_ATTRIB:
        return DirAttribEvent(path) if is_dir else FileAttribEvent(path)
    if is_dir:
        return None  # a folder in it opened or its entries changed: not news of its own
    if mask & In.IN_MODIFY:
        return FileModifiedEvent(path)
    if mask & In.IN_OPEN:
        return FileOpenedEvent(path)
    if mask & In.IN_CLOSE_WRITE:
        return FileClosedEvent(path)
    return None


def _tell(watch: LoopWatch, event: FileSystemEvent) -> None:
    try:
        watch.handle(event)
    except Exception:
        log.exception("ignoring a file event that could not be handled: %r", event)


def _why(code: int) -> str:
    if code == errno.ENOSPC:
        return "inotify watch limit reached (fs.inotify.max_user_watches)"
    if code == errno.EMFILE:
        return "inotify instance limit reached (fs.inotify.max_user_instances)"
    return os.strerror(code)
