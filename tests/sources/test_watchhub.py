"""Real inotify, many jobs: the triggers folders' watches share one observer, the progress monitors another,
and each still hears only of its own folder or file; plus who is told of what, as a table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from watchdog.events import (
    DirDeletedEvent,
    DirModifiedEvent,
    EventsLostEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from orchestrator.core.clock import SystemClock
from orchestrator.core.events import Trigger
from orchestrator.disk.atomic import write_json_atomic
from orchestrator.live.monitor import ProgressMonitor
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.sources.folder import FolderSource
from orchestrator.sources.loopobserver import LoopObserver
from orchestrator.sources.observer import SharedObserver
from orchestrator.sources.watch import FolderWatch
from orchestrator.sources.watchhub import Routes, Subscription, WatchHub, WatchKey, event_paths

WAIT = 5.0
JOBS = 150


def inotify_instances() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    return count


def in_use() -> tuple[int, int]:
    """Inotify instances and threads of this process."""
    return inotify_instances(), threading.active_count()


class Heard:
    """A folder watch's ``relevant``: records the files it is told of (on the observer's thread), and lets the
    test wait until it has heard of one."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self._ignored: set[str] = set()
        self._loop = asyncio.get_running_loop()
        self._news = asyncio.Event()

    def ignore(self, path: Path) -> None:
        """Forget ``path``, and what is heard of it from now on (the events that follow the one waited for)."""
        self._ignored.add(os.fspath(path))
        self.paths -= self._ignored

    def __call__(self, event: FileSystemEvent) -> float | None:
        if event.is_directory:
            return None
        self.paths.update(set(event_paths(event)) - self._ignored)
        self._loop.call_soon_threadsafe(self._news.set)
        return 0

    def look(self, folder: Path) -> None:
        """What a source does once its watch is armed again: it looks at the folder, since events about it may
        have come between the old watch and the new."""
        with contextlib.suppress(OSError):
            self.paths.update({os.fspath(entry) for entry in folder.iterdir()} - self._ignored)
        self._news.set()

    async def until(self, path: Path) -> None:
        async with asyncio.timeout(WAIT):
            while os.fspath(path) not in self.paths:
                self._news.clear()
                await self._news.wait()


class Watched:
    """A folder watch, what it heard, and a consumer that recovers it as the service's sources do."""

    def __init__(self, folder: Path, hub: WatchHub, stack: AsyncExitStack) -> None:
        self.heard = Heard()
        self.folder = folder
        self.watch = FolderWatch(folder, self.heard, "triggers", hub)
        self.recoveries = 0
        self.recovered = asyncio.Event()
        self.watch.start()
        stack.callback(self.watch.stop)
        task = asyncio.create_task(self._consume())
        stack.push_async_callback(_cancelled, task)

    async def _consume(self) -> None:
        while True:
            await self.watch.changed.wait()
            self.watch.changed.clear()
            if self.watch.recover():
                self.recoveries += 1
                self.heard.look(self.folder)
                self.recovered.set()

    async def until_recovered(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.recovered.wait()
        self.recovered.clear()


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@asynccontextmanager
async def tree(root: Path, jobs: list[str]) -> AsyncIterator[tuple[Watched, dict[str, Watched]]]:
    """The default job's watch on ``root`` and one per job on ``root/NAME``, sharing one hub (the service's
    triggers folders' hub)."""
    hub = WatchHub(observer=LoopObserver())
    async with AsyncExitStack() as stack:
        stack.callback(hub.stop)
        default = Watched(root, hub, stack)
        watched = {name: Watched(root / name, hub, stack) for name in jobs}
        for name, job in watched.items():
            # Heard once: the job's folder is watched.
            (root / name / "ready").touch()
            await job.heard.until(root / name / "ready")
            job.heard.ignore(root / name / "ready")
        yield default, watched


async def test_many_jobs_share_one_observer_and_each_hears_only_its_own(tmp_path: Path) -> None:
    triggers, data = tmp_path / "triggers", tmp_path / "data"
    data.mkdir()
    hub, progress_hub = WatchHub(observer=LoopObserver()), WatchHub()  # as the service has them
    before = in_use()
    async with AsyncExitStack() as stack:
        stack.callback(hub.stop)
        stack.callback(progress_hub.stop)
        default = Watched(triggers, hub, stack)
        watched: dict[str, Watched] = {}
        progress: dict[str, asyncio.Queue[Progress]] = {}

        def start_job(name: str) -> None:
            watched[name] = Watched(triggers / name, hub, stack)
            progress[name] = asyncio.Queue()
            monitor = ProgressMonitor(
                ProgressFile(data / f"{name}_progress.json"), progress[name].put_nowait, progress_hub
            )
            monitor.start()
            stack.callback(monitor.stop)
            stack.push_async_callback(_cancelled, asyncio.create_task(monitor.serve()))

        start_job("job-000")
        one = tuple(n - b for n, b in zip(in_use(), before, strict=True))
        for n in range(1, JOBS):
            start_job(f"job-{n:03d}")
        many = tuple(n - b for n, b in zip(in_use(), before, strict=True))
        print(f"\ninotify instances, threads: 1 job {one}, {JOBS} jobs {many}; watches {hub.watches}")
        assert many == one, "the instances and threads do not grow with the jobs"
        # The triggers folders: one watch each and one on their parent, one inotify instance and its reader
        # thread. The progress files: one watch on data/ and one on its parent, on watchdog's observer with one
        # inotify instance; its threads (watchdog 7.1): the observer's, the inotify reader's and dispatcher's,
        # one emitter per watch.
        assert (hub.observers, hub.watches) == (1, 1 + JOBS + 1)
        assert (progress_hub.observers, progress_hub.watches) == (1, 2)
        assert many == (2, 1 + 3 + progress_hub.watches)

        for name in watched:
            (triggers / name / "go").touch()
        for name, job in watched.items():
            await job.heard.until(triggers / name / "go")
        (triggers / "run-now").touch()
        await default.heard.until(triggers / "run-now")
        for name, job in watched.items():
            assert job.heard.paths == {os.fspath(triggers / name / "go")}, name
        assert default.heard.paths == {os.fspath(triggers / "run-now")}

        for name in progress:
            write_json_atomic(data / f"{name}_progress.json", {"status": "running", "step": name, "progress": 1})
        for name, seen in progress.items():
            async with asyncio.timeout(WAIT):
                assert (await seen.get()).step == name
        assert [name for name, seen in progress.items() if not seen.empty()] == [], "each hears only its own file"
    assert in_use() == before, "every observer stopped"


def rm_then_mkdir(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir(exist_ok=True)  # exist_ok: the watch may have re-created it already


def rm_only(folder: Path) -> None:
    shutil.rmtree(folder)


def mv_then_mkdir(folder: Path) -> None:
    aside = folder.with_name(folder.name + ".old")
    shutil.rmtree(aside, ignore_errors=True)
    folder.rename(aside)  # watchdog would go on watching it under its new name
    folder.mkdir(exist_ok=True)


@pytest.mark.parametrize(
    ("replace", "told"),
    [(rm_then_mkdir, False), (rm_only, True), (mv_then_mkdir, True)],
    ids=["rm-mkdir", "rm", "mv-mkdir"],
)
async def test_a_job_folder_deleted_or_moved_and_recreated_is_watched_again(
    tmp_path: Path, replace: Callable[[Path], None], told: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """``told``: whether the watch must say so. Not when the folder is deleted and made again at once: the new
    one may be made before the deletion is heard, and get the old one's inode."""
    root = tmp_path / "triggers"
    async with tree(root, ["one", "two"]) as (default, jobs):
        for n in range(2):  # twice: the fresh watch must notice the next time too
            replace(root / "one")
            if told:
                await jobs["one"].until_recovered()
            (root / "one" / f"after-{n}").touch()
            await jobs["one"].heard.until(root / "one" / f"after-{n}")
        (root / "two" / "still").touch()
        await jobs["two"].heard.until(root / "two" / "still")
        (root / "one" / "old-news").touch()  # heard after any late event about the old folders
        await jobs["one"].heard.until(root / "one" / "old-news")
    replaced = [r for r in caplog.records if "was removed or replaced" in r.getMessage()]
    assert len(replaced) == jobs["one"].recoveries, "one line each time it is watched anew"
    assert (jobs["one"].recoveries == 2) if told else (jobs["one"].recoveries <= 2)
    assert (jobs["two"].recoveries, default.recoveries) == (0, 0)
    assert jobs["two"].heard.paths == {os.fspath(root / "two" / "still")}
    assert not [p for p in default.heard.paths if "/one/" in p or ".old" in p]


async def test_the_triggers_folder_moved_aside_and_recreated_has_every_job_folder_watched_again(
    tmp_path: Path,
) -> None:
    root = tmp_path / "triggers"
    async with tree(root, ["one", "two"]) as (default, jobs):
        mv_then_mkdir(root)  # only the parent sees this: the folder's own watch follows it to its new name
        for watched in (default, *jobs.values()):
            await watched.until_recovered()  # the job folders are told when the tree is watched anew
        for name, job in jobs.items():
            assert (root / name).is_dir(), "re-created"
            (tmp_path / "triggers.old" / name / "stale").touch()  # the old tree: nobody hears of it
            (root / name / "fresh").touch()
            await job.heard.until(root / name / "fresh")
        (root / "run-now").touch()
        await default.heard.until(root / "run-now")
    for watched in (default, *jobs.values()):
        assert not [p for p in watched.heard.paths if "stale" in p or ".old" in p], watched.heard.paths


# ------------------------------------------------------------------------------------- the default folder
@asynccontextmanager
async def source(
    folder: Path, hub: WatchHub, leave_alone: frozenset[str] = frozenset()
) -> AsyncIterator[asyncio.Queue[Trigger]]:
    """A folder source whose triggers a stand-in for the runner "saves" at once (so their files go)."""
    queue: asyncio.Queue[Trigger] = asyncio.Queue()
    saved: asyncio.Queue[Trigger] = asyncio.Queue()
    folder_source = FolderSource(folder, queue, SystemClock(), hub, leave_alone=leave_alone)

    async def save_all() -> None:
        while True:
            trigger = await queue.get()
            assert trigger.receipt is not None
            trigger.receipt.settle(True)
            saved.put_nowait(trigger)

    folder_source.start()
    tasks = [asyncio.create_task(save_all()), asyncio.create_task(folder_source.serve())]
    try:
        yield saved
    finally:
        for task in tasks:
            await _cancelled(task)
        folder_source.stop()


async def test_each_job_takes_its_own_folders_triggers_and_the_default_leaves_job_folders_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "triggers"
    hub = WatchHub(observer=LoopObserver())
    try:
        async with (
            source(root, hub, leave_alone=frozenset({"report", "backup"})) as default,
            source(root / "report", hub) as report,
            source(root / "backup", hub) as backup,
        ):
            (root / "stray").mkdir()  # no job's: warned about, once
            for folder, queue in ((root / "report", report), (root / "backup", backup), (root, default)):
                (folder / "go").write_text(f"for {folder.name}")
                async with asyncio.timeout(WAIT):
                    assert (await queue.get()).reason == f"for {folder.name}"
            (root / "again").touch()
            async with asyncio.timeout(WAIT):
                assert (await default.get()).reason == "again"
            assert (report.empty(), backup.empty(), default.empty()) == (True, True, True)
    finally:
        hub.stop()
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [f"trigger file 'stray' in {root} is not a regular file; ignoring it"]


# ------------------------------------------------------------------------------------------- who is told
def subscriber(folder: str, names: set[str] | None = None) -> Subscription:
    return Subscription(WatchKey("/t"), folder, _names(names), lambda _: None)


def _names(names: set[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


EVERY = subscriber("/t")
ONLY_A = subscriber("/t", {"a"})
ONLY_B = subscriber("/t", {"b", "c"})
SUB = subscriber("/t/sub")
SUBSCRIBERS = [EVERY, ONLY_A, ONLY_B, SUB]


@pytest.mark.parametrize(
    ("event", "told"),
    [
        pytest.param(FileCreatedEvent("/t/a"), [EVERY, ONLY_A], id="an entry, by name"),
        pytest.param(FileClosedEvent("/t/d"), [EVERY], id="an entry nobody named"),
        pytest.param(FileMovedEvent("/t/a", "/t/b"), [EVERY, ONLY_A, ONLY_B], id="a move: both names, each once"),
        pytest.param(FileMovedEvent("", "/t/c"), [EVERY, ONLY_B], id="a move in from elsewhere"),
        pytest.param(FileCreatedEvent("/t/sub/x"), [SUB], id="an entry of a sub-folder"),
        pytest.param(FileCreatedEvent("/t/sub/deeper/x"), [], id="deeper than any subscriber"),
        pytest.param(DirDeletedEvent("/t/sub"), [EVERY, SUB], id="a sub-folder: its parent's entry, and itself"),
        pytest.param(DirDeletedEvent("/t"), [EVERY, ONLY_A, ONLY_B], id="the folder itself: all its subscribers"),
        pytest.param(DirModifiedEvent("/t"), [], id="a folder's modified: an echo"),
        pytest.param(DirModifiedEvent("/t/sub"), [], id="a sub-folder's modified: an echo"),
        pytest.param(EventsLostEvent("/t", is_directory=True), SUBSCRIBERS, id="events lost: everyone"),
        pytest.param(FileCreatedEvent("/elsewhere/a"), [], id="elsewhere"),
    ],
)
def test_who_is_told_of_an_event(event: FileSystemEvent, told: list[Subscription]) -> None:
    assert list(Routes(SUBSCRIBERS).targets(event)) == told


@pytest.fixture
def hub() -> Iterator[WatchHub]:
    hub = WatchHub()
    yield hub
    hub.stop()


async def test_a_folder_that_cannot_be_watched_leaves_nothing_running(tmp_path: Path, hub: WatchHub) -> None:
    before = in_use()
    (tmp_path / "a-file").write_text("")
    for missing_or_not_a_folder in (tmp_path / "missing", tmp_path / "a-file"):
        with pytest.raises(OSError):
            hub.subscribe(missing_or_not_a_folder, lambda _: None)
    assert (hub.observers, in_use()) == (0, before)


def test_a_replaced_watch_leaves_its_late_events_behind(tmp_path: Path) -> None:
    """Watchdog takes a watch scheduled again on the same folder for the same one; the shared observer hands an
    event only to the watch that queued it, so an event of the old one still queued is not news of the new."""
    (tmp_path / "keep").mkdir()
    (tmp_path / "w").mkdir()
    shared = SharedObserver()
    heard: list[str] = []
    news = threading.Event()

    def handle(event: FileSystemEvent) -> None:
        heard.extend(event_paths(event))
        if os.fspath(tmp_path / "w" / "news") in event_paths(event):
            news.set()

    try:
        shared.schedule(os.fspath(tmp_path / "keep"), recursive=False, handle=lambda _: None)  # keeps it running
        old = shared.schedule(os.fspath(tmp_path / "w"), recursive=False, handle=handle)
        shared.unschedule(old)
        new = shared.schedule(os.fspath(tmp_path / "w"), recursive=False, handle=handle)
        assert new == old and new is not old
        assert shared._observer is not None
        shared._observer.event_queue.put((FileCreatedEvent(os.fspath(tmp_path / "w" / "late")), old))
        (tmp_path / "w" / "news").touch()
        assert news.wait(WAIT)
        assert os.fspath(tmp_path / "w" / "late") not in heard
    finally:
        for watch in list(shared._current):
            shared.unschedule(watch)
    assert not shared.running
