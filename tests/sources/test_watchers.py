"""Real files and real inotify: the triggers folder source and the progress monitor."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from orchestrator.core.clock import SystemClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.disk.atomic import write_json_atomic
from orchestrator.live.monitor import ProgressMonitor
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.sources import folder as folder_module
from orchestrator.sources.folder import LOOP_FILES, TAKE_BATCH, FolderSource
from orchestrator.sources.loopobserver import LoopObserver
from orchestrator.sources.takenlog import TakenLog
from orchestrator.sources.trigger_files import TriggerFolder
from orchestrator.sources.watchhub import WatchHub
from tests.faults.harness import FileChanges

WAIT = 5.0
T = TypeVar("T")


class Watcher(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    async def serve(self) -> None: ...


@asynccontextmanager
async def serving(watcher: Watcher) -> AsyncIterator[None]:
    """Run a watcher's observer and its task for the block, then stop both."""
    watcher.start()
    task = asyncio.create_task(watcher.serve())
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        watcher.stop()


@pytest.fixture(params=["watchdog", "loop"])
def hub(request: pytest.FixtureRequest) -> Iterator[WatchHub]:
    """Both ways of watching a folder: watchdog's observer (the progress files), and one read on the loop (the
    triggers folders)."""
    hub = WatchHub(observer=LoopObserver()) if request.param == "loop" else WatchHub()
    yield hub
    hub.stop()


@asynccontextmanager
async def trigger_source(folder: Path, hub: WatchHub) -> AsyncIterator[tuple[FolderSource, asyncio.Queue[Trigger]]]:
    """The source, and what it hands over once a stand-in for the runner has "saved" it (settled its receipt:
    only then does the source remove the file)."""
    queue: asyncio.Queue[Trigger] = asyncio.Queue()
    saved: asyncio.Queue[Trigger] = asyncio.Queue()
    source = FolderSource(folder, queue, SystemClock(), hub)

    async def save_all() -> None:
        while True:
            trigger = await queue.get()
            assert trigger.receipt is not None, "a file's sender waits for the save"
            trigger.receipt.settle(True)
            saved.put_nowait(trigger)

    saver = asyncio.create_task(save_all())
    try:
        async with serving(source):
            yield source, saved
    finally:
        saver.cancel()


@pytest.fixture
async def folder_source(tmp_path: Path, hub: WatchHub) -> AsyncIterator[tuple[FolderSource, asyncio.Queue[Trigger]]]:
    async with trigger_source(tmp_path / "triggers", hub) as running:
        yield running


async def next_item(queue: asyncio.Queue[T]) -> T:
    async with asyncio.timeout(WAIT):
        return await queue.get()


next_trigger = next_item


async def until_gone(path: Path, queue: asyncio.Queue[Trigger]) -> Trigger:
    trigger = await next_trigger(queue)
    removal = FileChanges(path)  # removed once saved, a moment after the trigger is handed over
    try:
        await removal.until(lambda: not path.exists(), "removal of the taken trigger file", timeout=WAIT)
    finally:
        removal.close()
    return trigger


@pytest.mark.process
async def test_touch_works_every_time(folder_source: tuple[FolderSource, asyncio.Queue[Trigger]]) -> None:
    source, queue = folder_source
    path = source.watch.folder / "run-now"
    for _ in range(5):
        subprocess.run(["touch", str(path)], check=True)  # /usr/bin/touch: opened, attrib, closed
        trigger = await until_gone(path, queue)
        assert (trigger.source, trigger.reason) == (Source.FILE, "run-now")
    for _ in range(3):
        path.touch()  # Path.touch on a new file: created, closed
        await until_gone(path, queue)
    assert queue.empty()


async def test_tmp_then_rename_carries_the_reason(folder_source: tuple[FolderSource, asyncio.Queue[Trigger]]) -> None:
    source, queue = folder_source
    tmp = source.watch.folder / "deploy.tmp"
    tmp.write_text(json.dumps({"reason": "deploy 42"}))
    (source.watch.folder / "marker").touch()  # its events come after the .tmp file's
    assert (await next_trigger(queue)).reason == "marker", "a .tmp file is not a trigger"
    assert tmp.exists()
    os.replace(tmp, source.watch.folder / "deploy")
    assert (await until_gone(source.watch.folder / "deploy", queue)).reason == "deploy 42"
    assert list(source.watch.folder.iterdir()) == []


async def until_waiting(source: FolderSource) -> None:
    """Until the source waits for an event with nothing due: events of files already taken start no look."""
    async with asyncio.timeout(5):
        while not source.waiting.is_set() or source.watch.changed.is_set():  # noqa: ASYNC110 (two flags)
            await asyncio.sleep(0)  # one loop turn: the source's task runs, nothing else is waited for


async def test_a_file_is_taken_when_its_writer_closes_it(
    folder_source: tuple[FolderSource, asyncio.Queue[Trigger]],
) -> None:
    source, queue = folder_source
    # Any look at the folder takes what is there, half-written or not: wait until the looks for "ready" (and
    # for its own events) are over, and the source waits for the next event.
    (source.watch.folder / "ready").touch()
    assert (await next_trigger(queue)).reason == "ready"
    await until_waiting(source)
    with (source.watch.folder / "slow-writer").open("w") as out:
        out.write("first half")
        out.flush()
        # Still open: not taken, so the reason is not cut short. (Waited longer than 0.2 s: no fixed delay after
        # its creation lets a file whose writer is not done be taken.)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.get(), 0.5)
        out.write(" and second half")
    assert (await next_trigger(queue)).reason == "first half and second half"


async def test_a_hard_link_is_taken_at_once(
    folder_source: tuple[FolderSource, asyncio.Queue[Trigger]], tmp_path: Path
) -> None:
    source, queue = folder_source
    original = tmp_path / "outside"
    original.write_text("linked in")
    os.link(original, source.watch.folder / "hard-link")  # no writer, so no close event: nothing to wait for
    # Its name is the reason: a hard link may name a file its maker could not read.
    assert (await next_trigger(queue)).reason == "hard-link"
    assert original.read_text() == "linked in"


async def test_a_hard_link_whose_original_is_removed_at_once_is_taken_at_once(
    folder_source: tuple[FolderSource, asyncio.Queue[Trigger]], tmp_path: Path
) -> None:
    source, queue = folder_source
    original = tmp_path / "outside"
    original.write_text("linked, then unlinked")
    os.utime(original, (1e9, 1e9))  # written long ago: the link's ctime is past its mtime, whatever the timing
    os.link(original, source.watch.folder / "hard-link")
    original.unlink()  # the event may be looked at after this: one name left, as for a file just written
    assert (await next_trigger(queue)).reason == "linked, then unlinked"


async def test_a_file_moved_in_from_another_folder_is_taken(
    folder_source: tuple[FolderSource, asyncio.Queue[Trigger]], tmp_path: Path
) -> None:
    source, queue = folder_source
    outside = tmp_path / "prepared"
    outside.write_text('{"reason": "moved in"}')
    os.replace(outside, source.watch.folder / "moved")
    assert (await next_trigger(queue)).reason == "moved in"


async def test_files_present_at_start_are_taken(tmp_path: Path, hub: WatchHub) -> None:
    folder = tmp_path / "triggers"
    folder.mkdir()
    (folder / "early").write_text("left while we were down")
    async with trigger_source(folder, hub) as (_, queue):
        assert (await next_trigger(queue)).reason == "left while we were down"


async def test_folder_missing_at_start_is_created(tmp_path: Path, hub: WatchHub) -> None:
    folder = tmp_path / "not" / "yet"
    async with trigger_source(folder, hub) as (_, queue):
        (folder / "go").touch()
        assert (await next_trigger(queue)).reason == "go"


async def test_a_file_after_an_empty_look_is_taken_on_the_loop_and_a_burst_on_the_worker_thread(
    folder_source: tuple[FolderSource, asyncio.Queue[Trigger]], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, queue = folder_source
    await source.first_look.wait()
    await until_waiting(source)  # the first look (on the thread) found the folder empty
    calls: list[str] = []
    submit = source._worker.submit

    def counting(fn: Callable[..., T], /, *args: object) -> Future[T]:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return submit(fn, *args)

    monkeypatch.setattr(source._worker, "submit", counting)
    path = source.watch.folder / "run-now"
    path.touch()
    assert (await until_gone(path, queue)).reason == "run-now"
    assert calls == [], "one file, taken with no trip to a thread"

    count = TAKE_BATCH + LOOP_FILES + 1
    for n in range(count):
        (source.watch.folder / f"burst-{n:05d}").touch()
    reasons = {(await next_trigger(queue)).reason for _ in range(count)}
    assert reasons == {f"burst-{n:05d}" for n in range(count)}
    await until_waiting(source)
    assert list(source.watch.folder.iterdir()) == []
    assert queue.empty(), "every file once"
    assert calls, "a burst is read and removed on the worker thread"


async def test_folder_deleted_and_recreated_keeps_working(
    folder_source: tuple[FolderSource, asyncio.Queue[Trigger]],
) -> None:
    source, queue = folder_source
    folder = source.watch.folder
    shutil.rmtree(folder)
    # The watch notices the deletion, re-creates the folder and watches it again.
    async with asyncio.timeout(WAIT):
        while not folder.is_dir():
            await source.watch.changed.wait()
            await asyncio.sleep(0)
    (folder / "after").touch()
    assert (await next_trigger(queue)).reason == "after"


# --------------------------------------------------------------------------------------------- progress
@pytest.fixture
async def monitor(tmp_path: Path, hub: WatchHub) -> AsyncIterator[tuple[ProgressMonitor, asyncio.Queue[Progress]]]:
    seen: asyncio.Queue[Progress] = asyncio.Queue()
    monitor = ProgressMonitor(ProgressFile(tmp_path / "snapshot_progress.json"), seen.put_nowait, hub)
    async with serving(monitor):
        yield monitor, seen


next_progress = next_item


async def test_every_atomic_write_is_seen(monitor: tuple[ProgressMonitor, asyncio.Queue[Progress]]) -> None:
    mon, seen = monitor
    path = mon.watch.folder / "snapshot_progress.json"
    for n in range(1, 20):
        write_json_atomic(path, {"status": "running", "step": f"step {n}", "progress": n})
        progress = await next_progress(seen)
        assert (progress.status, progress.step, progress.progress) == (RunStatus.RUNNING, f"step {n}", n)


@pytest.mark.parametrize(
    "bad",
    [
        b'{"status": "running", "st',
        b"not json",
        b"[1, 2]",
        b'{"status": "bogus"}',
        b'{"status": "running", "progress": "x"}',
    ],
)
async def test_bad_writes_keep_the_last_good_state(
    monitor: tuple[ProgressMonitor, asyncio.Queue[Progress]], bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    mon, seen = monitor
    path = mon.watch.folder / "snapshot_progress.json"
    write_json_atomic(path, {"status": "running", "step": "good", "progress": 10})
    assert (await next_progress(seen)).step == "good"
    for _ in range(3):
        path.write_bytes(bad)  # in place, as a careless job would
    write_json_atomic(path, {"status": "running", "step": "good again", "progress": 20})
    assert (await next_progress(seen)).step == "good again"
    assert mon.latest is not None and mon.latest.step == "good again"
    warnings = [r for r in caplog.records if "keeping the last good state" in r.message]
    assert len(warnings) <= 1, "one line per problem, not one per event"


async def test_deleted_file_keeps_last_state(monitor: tuple[ProgressMonitor, asyncio.Queue[Progress]]) -> None:
    mon, seen = monitor
    path = mon.watch.folder / "snapshot_progress.json"
    write_json_atomic(path, {"status": "completed", "step": "Completed", "progress": 100})
    await next_progress(seen)
    path.unlink()
    write_json_atomic(path, {"status": "running", "step": "new run", "progress": 1})
    assert (await next_progress(seen)).step == "new run"


async def test_a_stop_while_a_look_is_on_its_thread_closes_the_folder_only_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: WatchHub
) -> None:
    """A cancel does not stop a worker thread: the folder's descriptor must outlive the look that uses it
    (closed under it, the look's next call fails with EBADF, or worse, uses a descriptor reused since)."""
    inside, release, closed = threading.Event(), threading.Event(), threading.Event()
    failures: list[OSError] = []
    scan, close = TriggerFolder.scan, TriggerFolder.close

    def slow_scan(folder: TriggerFolder, limit: int | None = None) -> list[os.DirEntry[str]] | None:
        entries = scan(folder, limit)
        inside.set()
        release.wait(WAIT)
        try:
            assert folder._fd is not None
            os.fstat(folder._fd)  # the look goes on using the folder's descriptor
        except OSError as exc:
            failures.append(exc)
        return entries

    def closing(folder: TriggerFolder) -> None:
        close(folder)
        closed.set()

    monkeypatch.setattr(TriggerFolder, "scan", slow_scan)
    monkeypatch.setattr(TriggerFolder, "close", closing)
    source = FolderSource(tmp_path / "triggers", asyncio.Queue(), SystemClock(), hub)
    source.start()
    task = asyncio.create_task(source.serve())
    assert await asyncio.to_thread(inside.wait, WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    closed.clear()
    source.stop()
    assert not closed.is_set(), "closed while the look still held it"
    release.set()
    assert await asyncio.to_thread(closed.wait, WAIT)
    assert failures == []


async def test_a_refused_batch_of_a_burst_keeps_its_files_and_every_file_is_saved_once(
    tmp_path: Path, hub: WatchHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst's batches are handed over without waiting for each other's save: a refused one keeps its files,
    every other's go once saved, and the next look takes what is left, so each file is saved exactly once."""
    monkeypatch.setattr(folder_module, "TAKE_BATCH", 4)
    folder = tmp_path / "triggers"
    folder.mkdir()
    names = {f"f{n:02d}" for n in range(12)}
    for name in names:
        (folder / name).touch()
    queue: asyncio.Queue[Trigger] = asyncio.Queue()
    source = FolderSource(folder, queue, SystemClock(), hub)
    receipts: list[object] = []
    saved: list[str] = []

    async def save_all_but_the_second_batch() -> None:
        while True:
            trigger = await queue.get()
            assert trigger.receipt is not None
            if trigger.receipt not in receipts:
                receipts.append(trigger.receipt)
            ok = receipts.index(trigger.receipt) != 1
            saved.extend([trigger.reason] if ok else [])
            trigger.receipt.settle(ok)

    saver = asyncio.create_task(save_all_but_the_second_batch())
    try:
        entries = await asyncio.to_thread(source._folder.scan)
        assert entries is not None
        assert not await source._take_burst(entries, TakenLog())
        left = {path.name for path in folder.iterdir()}
        assert len(left) == 4, "the refused batch's files stay"
        assert set(saved) == names - left, "the others' go once saved"
        source._refused = False  # as the next look does
        entries = await asyncio.to_thread(source._folder.scan)
        assert entries is not None
        assert await source._take_burst(entries, TakenLog())
        assert sorted(saved) == sorted(names), "each file saved exactly once"
        assert list(folder.iterdir()) == []
    finally:
        saver.cancel()
        source.stop()
