"""The folder watches read on the event loop, on real inotify: which watchdog event each file operation gives,
shared and replaced watches, a deleted folder, a symlink, an overflow, and our own removals kept quiet."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
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

from orchestrator.sources.loopobserver import LoopObserver
from orchestrator.sources.trigger_files import OWN_REMOVALS
from tests.sources.test_watchhub import inotify_instances

WAIT = 5.0
Seen = tuple[type[FileSystemEvent], str, str]


class Told:
    """A watch's handler: keeps what it is told (on the loop's thread), and wakes a waiter."""

    def __init__(self) -> None:
        self.events: list[FileSystemEvent] = []
        self._news = asyncio.Event()

    def __call__(self, event: FileSystemEvent) -> None:
        self.events.append(event)
        self._news.set()

    def seen(self, root: Path) -> list[Seen]:
        """Each event as (type, source, destination), the paths relative to ``root``."""

        def rel(path: bytes | str) -> str:
            return os.path.relpath(os.fsdecode(path), root) if path else ""

        return [(type(e), rel(e.src_path), rel(e.dest_path)) for e in self.events]

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not done():
                self._news.clear()
                await self._news.wait()


@pytest.fixture
async def observer() -> AsyncIterator[LoopObserver]:
    observer = LoopObserver()
    yield observer
    assert not observer.running, "every test unschedules its watches"


def touch(path: Path) -> None:
    """What ``touch`` does to a new file: create it, set its times through the descriptor, close it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.utime(fd)
    os.close(fd)


def new_file_written(folder: Path) -> None:
    (folder / "x.tmp").write_text("why")


OPERATIONS: list[tuple[str, Callable[[Path, Path], None], list[Seen]]] = [
    (
        "touch",
        lambda f, o: touch(f / "run-now"),
        [
            (FileCreatedEvent, "f/run-now", ""),
            (FileOpenedEvent, "f/run-now", ""),
            (FileAttribEvent, "f/run-now", ""),
            (FileClosedEvent, "f/run-now", ""),
        ],
    ),
    (
        "written, then renamed inside the folder",
        lambda f, o: (new_file_written(f), os.rename(f / "x.tmp", f / "x")),
        [
            (FileCreatedEvent, "f/x.tmp", ""),
            (FileOpenedEvent, "f/x.tmp", ""),
            (FileModifiedEvent, "f/x.tmp", ""),
            (FileClosedEvent, "f/x.tmp", ""),
            (FileMovedEvent, "f/x.tmp", ""),
            (FileMovedEvent, "", "f/x"),
        ],
    ),
    (
        "renamed in from elsewhere",
        lambda f, o: ((o / "y").write_bytes(b""), os.rename(o / "y", f / "y")),
        [(FileMovedEvent, "", "f/y")],
    ),
    (
        "renamed in, then out",
        lambda f, o: ((o / "z").write_bytes(b""), os.rename(o / "z", f / "z"), os.rename(f / "z", o / "z")),
        [(FileMovedEvent, "", "f/z"), (FileMovedEvent, "f/z", "")],
    ),
    (
        "a file removed, a folder made",
        lambda f, o: ((o / "w").write_bytes(b""), os.link(o / "w", f / "w"), os.unlink(f / "w"), os.mkdir(f / "d")),
        [(FileCreatedEvent, "f/w", ""), (FileDeletedEvent, "f/w", ""), (DirCreatedEvent, "f/d", "")],
    ),
]


@pytest.mark.parametrize(
    ("operation", "told"), [(op, told) for _, op, told in OPERATIONS], ids=[n for n, *_ in OPERATIONS]
)
async def test_each_file_operation_is_told_as_watchdogs_event(
    tmp_path: Path, observer: LoopObserver, operation: Callable[[Path, Path], None], told: list[Seen]
) -> None:
    folder, other = tmp_path / "f", tmp_path / "o"
    folder.mkdir()
    other.mkdir()
    handler = Told()
    watch = observer.schedule(os.fspath(folder), recursive=False, handle=handler)
    try:
        operation(folder, other)
        await handler.until(lambda: len(handler.events) >= len(told))
        # A no-op watch on another folder, read after the events above: nothing more comes for this one.
        await _one_more_turn(observer, other)
        assert handler.seen(tmp_path) == told
    finally:
        observer.unschedule(watch)


async def _one_more_turn(observer: LoopObserver, folder: Path) -> None:
    """Wait until the observer has read an event made after everything before (a file created in ``folder``)."""
    marker = Told()
    watch = observer.schedule(os.fspath(folder), recursive=False, handle=marker)
    try:
        (folder / ".marker").write_bytes(b"")
        await marker.until(lambda: any(e.src_path.endswith(".marker") for e in marker.events))
    finally:
        observer.unschedule(watch)


async def test_two_watches_of_one_folder_share_the_kernels_and_the_last_one_closes_the_instance(
    tmp_path: Path, observer: LoopObserver
) -> None:
    before = inotify_instances()
    first, second = Told(), Told()
    one = observer.schedule(os.fspath(tmp_path), recursive=False, handle=first)
    two = observer.schedule(os.fspath(tmp_path), recursive=False, handle=second)
    assert one.wd == two.wd
    assert inotify_instances() == before + 1
    (tmp_path / "a").write_bytes(b"")
    await first.until(lambda: any(isinstance(e, FileClosedEvent) for e in first.events))
    await second.until(lambda: any(isinstance(e, FileClosedEvent) for e in second.events))

    observer.unschedule(one)
    (tmp_path / "b").write_bytes(b"")
    await second.until(lambda: any(e.src_path.endswith("/b") for e in second.events))
    assert not any(e.src_path.endswith("/b") for e in first.events), "an unscheduled watch is told nothing more"
    observer.unschedule(two)
    assert (observer.running, inotify_instances()) == (False, before)


async def test_a_deleted_folder_is_told_and_a_new_one_at_its_path_can_be_watched(
    tmp_path: Path, observer: LoopObserver
) -> None:
    folder = tmp_path / "triggers"
    folder.mkdir()
    handler = Told()
    watch = observer.schedule(os.fspath(folder), recursive=False, handle=handler)
    folder.rmdir()
    await handler.until(lambda: any(isinstance(e, DirDeletedEvent) for e in handler.events))
    assert handler.seen(tmp_path) == [(DirDeletedEvent, "triggers", "")]
    observer.unschedule(watch)  # the kernel's watch is gone already: nothing to fail

    folder.mkdir()
    again = Told()
    watch = observer.schedule(os.fspath(folder), recursive=False, handle=again)
    try:
        (folder / "run-now").write_bytes(b"")
        await again.until(lambda: any(isinstance(e, FileClosedEvent) for e in again.events))
    finally:
        observer.unschedule(watch)


async def test_a_symlink_is_not_followed(tmp_path: Path, observer: LoopObserver) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "triggers").symlink_to(target)
    handler = Told()
    watch = observer.schedule(os.fspath(tmp_path / "triggers"), recursive=False, handle=handler)
    try:
        (target / "run-now").write_bytes(b"")
        await _one_more_turn(observer, tmp_path)
        assert handler.events == [], "the watch is on the link, not on the folder it leads to"
    finally:
        observer.unschedule(watch)


async def test_a_busy_loop_loses_no_event_of_more_than_the_kernel_queues(
    tmp_path: Path, observer: LoopObserver
) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    handler = Told()
    watch = observer.schedule(os.fspath(tmp_path), recursive=False, handle=handler)
    try:
        # The loop does not run meanwhile: more events than the kernel queues for an instance (two a folder).
        folders = limit // 2 + 1000
        for n in range(folders):
            os.mkdir(tmp_path / str(n))
            os.rmdir(tmp_path / str(n))
        await handler.until(lambda: sum(isinstance(e, DirDeletedEvent) for e in handler.events) == folders)
        assert not [e for e in handler.events if isinstance(e, EventsLostEvent)], "nothing was lost"
        assert sum(isinstance(e, DirCreatedEvent) for e in handler.events) == folders
    finally:
        observer.unschedule(watch)


async def test_an_overflow_the_kernel_reports_is_told_to_every_watch(tmp_path: Path, observer: LoopObserver) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first, second = Told(), Told()
    watches = [
        observer.schedule(os.fspath(one), recursive=False, handle=first),
        observer.schedule(os.fspath(two), recursive=False, handle=second),
    ]
    try:
        # What the kernel hands over when its queue was full: one record, on no watch (it cannot be provoked
        # while the reader drains the queue as fast as it fills).
        observer.dispatch(struct.pack("iIII", -1, In.IN_Q_OVERFLOW, 0, 0))
        assert first.events == [EventsLostEvent(os.fspath(one), is_directory=True)]
        assert second.events == [EventsLostEvent(os.fspath(two), is_directory=True)]
    finally:
        for watch in watches:
            observer.unschedule(watch)


async def test_our_own_removals_are_not_told_and_others_are(tmp_path: Path, observer: LoopObserver) -> None:
    folder = tmp_path / "triggers"
    folder.mkdir()
    (folder / "ours").write_bytes(b"")
    (folder / "theirs").write_bytes(b"")
    handler = Told()
    watch = observer.schedule(os.fspath(folder), recursive=False, handle=handler)
    try:
        OWN_REMOVALS.expect(os.fsencode(folder / "ours"))
        os.unlink(folder / "ours")
        os.unlink(folder / "theirs")
        await handler.until(lambda: bool(handler.events))
        await _one_more_turn(observer, tmp_path)
        assert handler.seen(folder) == [(FileDeletedEvent, "theirs", "")]
        assert not OWN_REMOVALS, "the removal was claimed"
    finally:
        observer.unschedule(watch)


async def test_a_recursive_watch_is_refused_and_the_instance_is_not_inherited(
    tmp_path: Path, observer: LoopObserver
) -> None:
    with pytest.raises(ValueError, match="never recursive"):
        observer.schedule(os.fspath(tmp_path), recursive=True, handle=Told())
    with pytest.raises(FileNotFoundError):
        observer.schedule(os.fspath(tmp_path / "missing"), recursive=False, handle=Told())
    assert not observer.running, "a failed first watch leaves nothing open"
    watch = observer.schedule(os.fspath(tmp_path), recursive=False, handle=Told())
    try:
        fd = observer._fd
        assert fd is not None and _is_inotify(fd), "the instance is open"
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, "a job never gets it"
    finally:
        observer.unschedule(watch)


def _is_inotify(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    except OSError:
        return False
