"""Folder watches whose events are handed on on the event loop's own thread: one inotify instance, drained by one
reader thread as fast as the kernel fills it, each batch turned into watchdog's events and handed to the watches'
handlers in one turn of the loop.

The triggers folders are watched this way. A ``touch`` there is then heard after one hop, from the reader to
the loop, not after watchdog's inotify reader, its dispatcher, the watch's emitter and the observer's
dispatcher have each taken their turn on a thread (and the GIL), and its trigger is taken in the loop's next
turn. A burst's events are handed on two buffers a turn, each a few milliseconds of the loop. Drained by a
thread, not read by the loop itself: the kernel queues 16,384 events at most, and a loop busy for a moment in
a burst of files would otherwise lose events (then what was heard of a file being written). The progress files
keep watchdog's observer.

What it gives up against watchdog's inotify observer, on purpose: watches are never recursive (each job's
folder is a watch of its own; the folders' parents are watches too), and renames are not paired: a rename out
of a watched folder is a move with no destination, a rename in one with no source, and a rename inside a folder
is both, one after the other. That is all a folder watch needs (it looks at the folder itself), and it means no
0.5 s wait for a rename's other half. Like watchdog's, the watch of a symlink does not follow it.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Callable, Iterator
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
"""Read at a time: about 1,500 events of short names."""

BUFFERS_PER_TURN = 2
"""Buffers handed on in one turn of the loop (a few milliseconds of its time in a burst); the rest in the next."""

_HEADER = struct.Struct("iIII")


@dataclass(frozen=True, slots=True, eq=False)
class LoopWatch:
    """One scheduled watch: its inotify watch descriptor, its folder, and whom to tell."""

    wd: int
    path: str
    handle: Handler


class LoopObserver:
    """Watches folders (not recursively) with one inotify instance whose events are handed on on the running
    event loop's thread, opened with the first watch and closed with the last (its reader thread with it).
    Schedule and unschedule on the loop's thread too.

    Several watches of one folder (the same inode) share the kernel's watch; each is told of its events, by the
    path it was scheduled with. Events queued for a watch unscheduled since are dropped, as are a removed
    watch's: the kernel never hands its descriptor to another watch of this instance soon after."""

    on_loop = True
    """Handlers are called on the loop's thread."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._drain: _Drain | None = None
        self._watches: dict[int, list[LoopWatch]] = {}

    @property
    def running(self) -> bool:
        return self._fd is not None

    def schedule(self, path: str, *, recursive: bool, handle: Handler) -> LoopWatch:
        """Watch the folder at ``path`` and tell ``handle`` of its events; ``OSError`` if it cannot be watched."""
        if recursive:
            raise ValueError("a watch handed on on the loop is never recursive")
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
                    # Fails (ignored) when the kernel removed it itself: its folder was deleted.
                    inotify_rm_watch(self._fd, WatchDescriptor(watch.wd))
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
        try:
            reader = _Drain(fd, loop, self._deliver)
            reader.start()
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._drain = fd, reader
        return fd

    def _close_if_idle(self) -> None:
        if self._watches or self._fd is None or self._drain is None:
            return
        fd, reader, self._fd, self._drain = self._fd, self._drain, None, None
        reader.stop()  # joined before the close: its read never meets a descriptor reused since
        os.close(fd)

    def _deliver(self) -> None:
        """A few buffers the reader drained, each event handed to its watches; a turn of its own for the rest."""
        reader = self._drain
        if reader is None:
            return  # closed since the call was queued
        buffers, more = reader.take(BUFFERS_PER_TURN)
        for buffer in buffers:
            self.dispatch(buffer)
        if more:
            asyncio.get_running_loop().call_soon(self._deliver)

    def dispatch(self, buffer: bytes) -> None:
        """Hand each ``struct inotify_event`` of ``buffer`` to its watches (on the loop's thread)."""
        for wd, mask, name in _parse(buffer):
            if mask & In.IN_Q_OVERFLOW:
                # The kernel dropped events (its queue filled faster than the reader drained it): every watch
                # looks again.
                for each in [watch for watches in self._watches.values() for watch in watches]:
                    _tell(each, EventsLostEvent(each.path, is_directory=True))
            elif mask & In.IN_IGNORED:
                self._watches.pop(wd, None)  # the kernel's watch is gone (its folder was deleted, or unscheduled)
            elif (watches := self._watches.get(wd)) is not None:
                for watch in tuple(watches):
                    if (event := _event(watch.path, mask, name)) is not None:
                        _tell(watch, event)


class _Drain(threading.Thread):
    """Reads the inotify descriptor as soon as the kernel has events, into memory, and asks the loop once per
    batch to hand them on. The kernel's queue (``fs.inotify.max_queued_events``, 16,384 events by default: a
    burst of 4,000 ``touch``es) then never fills while the loop is busy elsewhere; this one is unbounded, as
    watchdog's own reader's is."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, deliver: Callable[[], None]) -> None:
        super().__init__(name="triggers-inotify", daemon=True)
        self._fd, self._loop, self._deliver = fd, loop, deliver
        self._wake_r, self._wake_w = os.pipe()
        self._buffers: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self._due = False
        """A call to deliver is on its way to the loop (or the loop is still delivering): no other is asked for."""

    def run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = poller.poll()
            if any(fd == self._wake_r for fd, _ in ready):
                return
            try:
                buffer = os.read(self._fd, READ_BYTES)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                log.exception("cannot read the triggers folders' inotify instance; they are looked at after runs")
                return
            with self._lock:
                self._buffers.append(buffer)
                if self._due:
                    continue
                self._due = True
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                return

    def take(self, limit: int) -> tuple[list[bytes], bool]:
        """Up to ``limit`` buffers, oldest first, and whether more are left (then the caller delivers again)."""
        with self._lock:
            buffers = [self._buffers.popleft() for _ in range(min(limit, len(self._buffers)))]
            more = bool(self._buffers)
            self._due = more
        return buffers, more

    def stop(self) -> None:
        os.write(self._wake_w, b"!")
        self.join()
        os.close(self._wake_r)
        os.close(self._wake_w)


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
