"""Fault injection: the triggers folder lies. Other tools write this folder, so it can hold symlinks, folders,
FIFOs, device files, huge or undecodable payloads; it can be deleted, moved aside or replaced while the service
runs; and a script gone wrong can drop thousands of files in a second. Each case is provoked for real against
a real service, which must take what is a trigger, ignore what is not (once, with one warning), never block,
never die, and keep one run at a time.

Most tests share one service whose job (``true``) ends at once; the bursts get a service each, with a job the
test ends by hand."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from watchdog.events import EVENT_TYPE_OPENED, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from orchestrator.core.events import MAX_REASON_CHARS
from orchestrator.sources.folder import TAKE_BATCH
from tests import support
from tests.faults.harness import FifoJob, LogFollower, ci, peak_rss_kib, until_consumed
from tests.support import ServiceProcess, SSEEvent, next_status, saved_state, sse_stream, start_service

pytestmark = pytest.mark.process

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = start_service(tmp_path_factory.mktemp("trigger-lies"), "--command", "true", "--log-level", "debug")
    try:
        service.wait_ready()
        yield service
    finally:
        assert service.stop() == 0, service.logs()


@pytest.fixture
async def stream(service: ServiceProcess) -> AsyncIterator[AsyncIterator[SSEEvent]]:
    async with aiohttp.ClientSession() as session:
        yield sse_stream(session, service.url + "/api/snapshot/events")


def last_reason_is(reason: str) -> Callable[[Doc], bool]:
    return lambda d: not d["running"] and (d["lastRun"] or {}).get("reason") == reason


async def ran(stream: AsyncIterator[SSEEvent], reason: str) -> Doc:
    """Wait until a run with exactly this reason has ended; its record."""
    doc = await next_status(stream, last_reason_is(reason), timeout=10)
    run: Doc = doc["lastRun"]
    assert run["status"] == "completed", run
    return run


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------- what is in it
class Opens(FileSystemEventHandler):
    """Records every open of a file in a folder, as inotify reports it (whoever opened it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.paths: list[str] = []
        self.arrived = asyncio.Event()
        self._loop = loop

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == EVENT_TYPE_OPENED:
            self.paths.append(os.fsdecode(event.src_path))
            self._loop.call_soon_threadsafe(self.arrived.set)

    async def wait_for(self, path: Path) -> None:
        async with asyncio.timeout(5):
            while os.fspath(path) not in self.paths:
                self.arrived.clear()
                await self.arrived.wait()


async def test_a_symlink_is_taken_but_never_followed(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text('{"reason": "leaked"}')
    sentinel = outside / "sentinel"
    sentinel.write_text("")
    pipe = outside / "pipe"
    os.mkfifo(pipe)  # no writer: following a link to it would block
    opens = Opens(asyncio.get_running_loop())
    observer = Observer()
    observer.schedule(opens, os.fspath(outside), recursive=False)
    observer.start()
    try:
        for name, target in [("to-secret", secret), ("to-fifo", pipe), ("to-folder", outside), ("dangling", "nope")]:
            link = service.triggers_dir / name
            link.symlink_to(target)
            await ran(stream, name)  # a trigger, whose reason is its name (the target's content is not read)
            assert not link.is_symlink(), "the link is removed like any trigger file"
        # inotify reports events in order: once the sentinel's open is seen, any open of the targets was too.
        sentinel.read_text()
        await opens.wait_for(sentinel)
        assert opens.paths == [os.fspath(sentinel)], "a target was opened"
    finally:
        observer.stop()
        observer.join(timeout=5)
    assert secret.read_text() == '{"reason": "leaked"}'
    assert entries(service.triggers_dir) == []


def make_device(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null of its own
    except PermissionError as exc:
        if ci():
            raise
        pytest.skip(f"cannot make a device file here: {exc}")


async def test_folders_fifos_and_devices_are_ignored_with_one_warning_and_never_block(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent], follower: LogFollower
) -> None:
    folder = service.triggers_dir
    mark = follower.mark()
    make_device(folder / "device")
    (folder / "a-folder").mkdir()
    os.mkfifo(folder / "a-fifo")
    writer = os.open(folder / "a-fifo", os.O_RDWR)  # a FIFO with a writer that never writes: reads would hang
    try:
        (folder / "go-1").touch()
        first = await ran(stream, "go-1")
        (folder / "go-2").write_text("go-2")
        second = await ran(stream, "go-2")
        service.wait_for_log(f"run {second['runId']} completed")
    finally:
        os.close(writer)
    assert first["runId"] != second["runId"]
    assert entries(folder) == ["a-fifo", "a-folder", "device"], "what is not a trigger is left alone"
    warned = [line for line in follower.text(mark).splitlines() if "is not a regular file; ignoring it" in line]
    for name in ("a-fifo", "a-folder", "device"):
        # Looked at on every event and after each run, warned about once (in one line with the others met then).
        assert sum(repr(name) in line for line in warned) == 1, follower.text(mark)
    for name in ("a-fifo", "device"):
        (folder / name).unlink()
    (folder / "a-folder").rmdir()


async def test_a_payload_over_the_cap_is_taken_with_its_reason_cut(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent]
) -> None:
    folder = service.triggers_dir
    words = "new data arrived " * 8192  # 136 KiB
    (folder / "long").write_text(words)
    run = await ran(stream, words[:MAX_REASON_CHARS].strip())
    assert run["triggerCount"] == 1
    with (folder / "endless").open("wb") as out:  # 8 GiB, sparse: all zeros, which are no reason at all
        out.truncate(8 << 30)
    await ran(stream, "endless")
    await until_consumed(folder)
    peak = peak_rss_kib(service.proc.pid)
    assert peak < 200 * 1024, f"the service read more than the cap: peak RSS {peak} KiB"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"\xff\xfedeploy \xc3(", "\ufffd\ufffddeploy \ufffd(", id="invalid-utf8"),
        pytest.param(b'{"reason": "half a doc', '{"reason": "half a doc', id="invalid-json"),
        pytest.param(b'{"reason": "x", "more": [1, 2', '{"reason": "x", "more": [1, 2', id="torn-json"),
        # Nested deeper than the parser's stack: this raised RecursionError, which killed the folder source.
        pytest.param(b'{"reason": ' + b"[" * 4000, ('{"reason": ' + "[" * 4000)[:MAX_REASON_CHARS], id="json-nested"),
        pytest.param(b'{"reason": 42}', "42", id="reason-not-a-string"),
        pytest.param(b"[1, 2, 3]", "[1, 2, 3]", id="json-not-an-object"),
    ],
)
async def test_an_undecodable_payload_becomes_a_plain_reason(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent], payload: bytes, reason: str
) -> None:
    (service.triggers_dir / "odd").write_bytes(payload)
    await ran(stream, reason)
    assert entries(service.triggers_dir) == []
    assert service.proc.poll() is None


# ------------------------------------------------------------------------------------- the folder itself
def rm_then_mkdir(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir(exist_ok=True)  # exist_ok: the service may have re-created it already


def rm_only(folder: Path) -> None:
    shutil.rmtree(folder)


def mv_then_mkdir(folder: Path) -> None:
    aside = folder.with_name("triggers.old")
    shutil.rmtree(aside, ignore_errors=True)
    folder.rename(aside)  # the old watch would follow the folder to its new name
    folder.mkdir(exist_ok=True)


@pytest.mark.parametrize("replace", [rm_then_mkdir, rm_only, mv_then_mkdir], ids=["rm-mkdir", "rm", "mv-mkdir"])
async def test_the_folder_deleted_or_moved_and_recreated_keeps_file_triggers_working(
    service: ServiceProcess,
    stream: AsyncIterator[SSEEvent],
    follower: LogFollower,
    replace: Callable[[Path], None],
) -> None:
    folder = service.triggers_dir
    for n in range(2):  # twice: the fresh watch must notice the next time too
        mark = follower.mark()
        replace(folder)
        # The service re-creates the folder if need be and watches the new one ("watching" is a debug line).
        await follower.until_count(f"watching {folder} for triggers", at_least=1, since=mark)
        name = f"after-{replace.__name__}-{n}"
        (folder / name).touch()
        await ran(stream, name)
        assert follower.count(f"triggers folder {folder} was removed or replaced", since=mark) == 1
    await until_consumed(folder)


async def test_the_folder_replaced_by_a_file_does_not_stop_the_service(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent], follower: LogFollower
) -> None:
    folder = service.triggers_dir
    mark = follower.mark()
    shutil.rmtree(folder)
    for _ in range(100):  # the service re-creates the folder as soon as it hears it go: until the file wins
        try:
            folder.write_text("not a folder")
            break
        except IsADirectoryError:
            folder.rmdir()
    else:
        raise AssertionError("the folder came back 100 times before a file could take its place")
    await follower.until_count(f"cannot watch triggers folder {folder}", at_least=1, since=mark)
    # Other triggers still work, and runs still end (each end looks at the folder again: no crash there).
    for n in range(2):
        status, _ = service.post_json("/api/snapshot/trigger", {"reason": f"http-{n}"})
        assert status == 202
        await ran(stream, f"http-{n}")
    assert follower.count(f"cannot watch triggers folder {folder}", since=mark) == 1, follower.text(mark)
    # Put right, the folder is watched again at once, without waiting for a run.
    folder.unlink()
    folder.mkdir(exist_ok=True)
    await follower.until_count(f"watching triggers folder {folder} again", at_least=1, since=mark)
    (folder / "back").touch()
    await ran(stream, "back")
    assert service.proc.poll() is None


# ---------------------------------------------------------------------------------------------- bursts
BURST = 3000


def burst(folder: Path, count: int = BURST) -> float:
    """Drop ``count`` empty trigger files as fast as this process can; the seconds it took."""
    started = time.monotonic()
    for n in range(count):
        os.close(os.open(folder / f"burst-{n:05d}", os.O_WRONLY | os.O_CREAT, 0o644))
    return time.monotonic() - started


@pytest.fixture
def fifo_job(tmp_path: Path) -> Iterator[FifoJob]:
    job = FifoJob(tmp_path / "job")
    yield job
    job.close()


TAKEN = re.compile(
    r"orchestrator\.sources\.folder: (?:(\d+)(?: more)? trigger files taken|trigger file .* taken \(reason)"
)


def taken_lines(log: str) -> list[int]:
    """The files each "taken" line of the log speaks for."""
    return [int(m[1] or 1) for m in TAKEN.finditer(log)]


async def all_taken_logged(service: ServiceProcess, count: int) -> list[int]:
    """Wait for the lines that account for ``count`` taken files (a summary comes within a second)."""
    follower = LogFollower(service)
    try:
        await follower.until(lambda: sum(taken_lines(service.logs())) >= count, f"lines for {count} files")
    finally:
        follower.close()
    lines = taken_lines(service.logs())
    assert sum(lines) == count, lines
    return lines


async def test_a_burst_during_a_run_gives_exactly_one_follow_up_and_consumes_every_file(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob
) -> None:
    service = service_factory("--command", fifo_job.command)
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        first = (await next_status(stream, lambda d: d["running"]))["currentRun"]
        took = burst(service.triggers_dir)
        doc = await next_status(stream, lambda d: d["pendingTriggers"] == BURST, timeout=30)
        await until_consumed(service.triggers_dir)  # every file
        assert doc["running"] and doc["currentRun"]["runId"] == first["runId"] and doc["queued"]

        fifo_job.finish()
        after_first = await next_status(
            stream, lambda d: d["running"] and (d["lastRun"] or {}).get("runId") == first["runId"]
        )
        follow_up = after_first["currentRun"]
        assert follow_up is not None, "the follow-up starts as the first run ends"
        assert (follow_up["trigger"], follow_up["triggerCount"]) == ("file", BURST)
        fifo_job.finish()
        doc = await next_status(stream, lambda d: (d["lastRun"] or {}).get("runId") == follow_up["runId"])
        assert (doc["running"], doc["queued"], doc["pendingTriggers"]) == (False, False, 0), "no third run owed"
    service.wait_for_log(f"run {follow_up['runId']} completed")
    lines = await all_taken_logged(service, BURST)
    log = service.logs()
    assert log.count("a follow-up run is queued") == 1, "one line for the follow-up, not one per file"
    assert log.count(f"absorbs {BURST} triggers") == 1
    assert len(lines) <= 2 * (took + 2), f"{len(lines)} lines for {BURST} files in {took:.1f}s: {lines}"
    print(f"\n{BURST} files in {took:.2f}s during a run: 1 follow-up; lines for the files: {lines}")


async def test_a_burst_while_idle_gives_one_run_plus_at_most_one_follow_up(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob
) -> None:
    fifo_job.finish()  # the start-up run ends at once: the service is idle when the burst comes
    service = service_factory("--command", fifo_job.command)
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        startup = await next_status(stream, lambda d: not d["running"] and d["lastRun"] is not None)
        took = burst(service.triggers_dir)
        doc = await next_status(
            stream,
            lambda d: d["running"] and d["currentRun"]["triggerCount"] + d["pendingTriggers"] == BURST,
            timeout=30,
        )
        await until_consumed(service.triggers_dir)  # every file
        runs = [doc["currentRun"]]
        fifo_job.finish()
        if doc["pendingTriggers"]:
            first_id = runs[0]["runId"]
            runs.append(
                (await next_status(stream, lambda d: d["running"] and (d["lastRun"] or {}).get("runId") == first_id))[
                    "currentRun"
                ]
            )
            assert runs[1] is not None, "the follow-up starts as the first run ends"
            fifo_job.finish()
        doc = await next_status(stream, lambda d: (d["lastRun"] or {}).get("runId") == runs[-1]["runId"])
        assert (doc["running"], doc["pendingTriggers"]) == (False, 0)
    assert startup["lastRun"]["runId"] not in {r["runId"] for r in runs}
    assert sum(r["triggerCount"] for r in runs) == BURST
    assert {r["trigger"] for r in runs} == {"file"}
    service.wait_for_log(f"run {runs[-1]['runId']} completed")
    lines = await all_taken_logged(service, BURST)
    assert service.logs().count("a follow-up run is queued") == len(runs) - 1
    assert len(lines) <= 2 * (took + 2), f"{len(lines)} lines for {BURST} files in {took:.1f}s: {lines}"
    counts = [r["triggerCount"] for r in runs]
    print(f"\n{BURST} files in {took:.2f}s while idle: runs of {counts}; lines for the files: {lines}")


BURST_WRITER = """
import os, sys
for n in range(int(sys.argv[2])):
    os.close(os.open(os.path.join(sys.argv[1], f"burst-{n:05d}"), os.O_WRONLY | os.O_CREAT, 0o644))
"""


async def test_a_big_burst_does_not_freeze_the_event_loop(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob
) -> None:
    """Thousands of files are taken off the event loop, in batches: taken in one go on the loop, 30,000 of them
    held /health's answer up to 6.7 s."""
    count = 10_000
    service = service_factory("--command", fifo_job.command)
    lags: list[float] = []
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(stream, lambda d: d["running"])  # the start-up run holds: the burst is one follow-up
        done = asyncio.Event()

        async def probe() -> None:
            """Ask /health back to back: each answer's delay is how long the service's loop was busy."""
            while not done.is_set():
                started = time.monotonic()
                async with session.get(service.url + "/health") as response:
                    assert response.status == 200
                lags.append(time.monotonic() - started)

        prober = asyncio.create_task(probe())
        try:
            # From a process of its own, so that the burst is as fast as the reviewer's (30,000 in 0.42 s).
            started = time.monotonic()
            writer = await asyncio.create_subprocess_exec(
                support.PYTHON, "-c", BURST_WRITER, os.fspath(service.triggers_dir), str(count)
            )
            async with asyncio.timeout(30):
                assert await writer.wait() == 0
            written = time.monotonic()
            took = written - started
            await next_status(stream, lambda d: d["pendingTriggers"] == count, timeout=45)
            consumed = time.monotonic() - written
        finally:
            done.set()
            await prober
    await until_consumed(service.triggers_dir)  # every file
    assert len(lags) >= 10, f"the probe hardly ran: {lags}"
    # The loop stays quick while a worker thread takes the files; taken on the loop, 10,000 files kept it
    # busy for about 1.5 s here. 0.5 s leaves room for a loaded 2-core CI box.
    assert max(lags) < 0.5, f"/health took {max(lags):.2f}s while the burst was consumed"
    lags.sort()
    print(
        f"\n{count} files written in {took:.2f}s, all consumed {consumed:.2f}s later; /health over {len(lags)}"
        f" requests: p50 {lags[len(lags) // 2] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )


async def test_a_stop_in_the_middle_of_a_burst_loses_no_file(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob
) -> None:
    """Files are taken on a worker thread, which a stop cannot interrupt: what it took must still be saved."""
    service = service_factory("--command", fifo_job.command)
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(stream, lambda d: d["running"])
        burst(service.triggers_dir)
        # Stop while the files are being taken: some are taken, some are still in the folder.
        await next_status(stream, lambda d: d["pendingTriggers"] > 0, timeout=30)
    assert service.stop() == 0, service.logs()
    state = saved_state(service.data_dir)
    left = len(entries(service.triggers_dir))
    # Nothing lost; a file saved in the stop's last instant may still be there too (taken again, it coalesces).
    assert BURST <= state["pendingCount"] + left <= BURST + TAKE_BATCH, (state["pendingCount"], left)
    print(f"\nstopped mid-burst: {state['pendingCount']} files saved as pending, {left} left in the folder")


# ------------------------------------------------------------------------------------ the folder unreadable
@pytest.fixture
def without_dac_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Services started in this test lack CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that a ``chmod 000``
    keeps them out of a folder even though the tests run as root (the test itself keeps both)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if ci():
            raise AssertionError("setpriv (util-linux) is needed")
        pytest.skip("no setpriv here")
    if os.geteuid() != 0:
        pytest.skip("running unprivileged already: chmod 000 works as is, but the test chmods as root")
    wrapper = tmp_path / "python-without-dac-override"
    wrapper.write_text(
        f'#!/bin/sh\nexec {setpriv} --bounding-set=-dac_override,-dac_read_search -- {support.PYTHON} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(support, "PYTHON", os.fspath(wrapper))  # start_service runs PYTHON -m orchestrator


@pytest.mark.usefixtures("without_dac_override")
async def test_files_that_arrive_while_the_folder_cannot_be_listed_are_taken_once_it_can(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    service = service_factory("--command", "true", "--log-level", "debug")
    folder = service.triggers_dir
    follower = LogFollower(service)
    outside = tmp_path / "outside"
    outside.mkdir()
    try:
        async with aiohttp.ClientSession() as session:
            stream = sse_stream(session, service.url + "/api/snapshot/events")
            await next_status(stream, lambda d: not d["running"] and d["lastRun"] is not None)  # start-up run
            mark = follower.mark()
            folder.chmod(0)
            try:
                # Hard links of empty files: one event each (no close), so one look each, which fails.
                for n, failed_looks in [(1, "cannot be listed"), (2, "still cannot be listed")]:
                    (outside / f"meanwhile-{n}").touch()
                    os.link(outside / f"meanwhile-{n}", folder / f"meanwhile-{n}")
                    await follower.until_count(f"triggers folder {folder} {failed_looks}", at_least=1, since=mark)
            finally:
                folder.chmod(0o755)  # no event for the files in it: only a look on a timer finds them
            doc = await next_status(
                stream,
                lambda d: (
                    {"meanwhile-1", "meanwhile-2"} <= {t["reason"] for t in (d["lastRun"] or {}).get("triggers", [])}
                ),
                timeout=15,
            )
        assert doc["lastRun"]["status"] == "completed"
        await follower.until_count(f"triggers folder {folder} can be listed again", at_least=1, since=mark)
        await until_consumed(folder)
        assert follower.count("WARNING", "cannot be listed", since=mark) == 1, follower.text(mark)
        assert follower.count("can be listed again", since=mark) == 1, follower.text(mark)
    finally:
        follower.close()


# ---------------------------------------------------------------------------------------- names and writers
async def test_a_name_with_a_newline_cannot_forge_a_log_line(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent], follower: LogFollower
) -> None:
    forged = "2026-11-28 12:00:00,000 CRITICAL orchestrator.service: FORGED"
    folder = service.triggers_dir
    mark = follower.mark()
    (folder / f"evil\n{forged}").touch()
    run = await ran(stream, f"evil {forged}")  # the reason is one clean line
    os.mkfifo(folder / f"evil-fifo\n{forged}")  # warned about, by name
    try:
        (folder / "after-fifo").touch()
        await ran(stream, "after-fifo")
        service.wait_for_log(f"run {run['runId']} completed")
        await follower.until_count("evil-fifo", "is not a regular file", at_least=1, since=mark)
    finally:
        (folder / f"evil-fifo\n{forged}").unlink()
    lines = follower.text(mark).splitlines()
    assert not [line for line in lines if line.startswith(forged[:23])], follower.text(mark)
    assert any("'evil\\n2026-11-28" in line for line in lines), follower.text(mark)


async def test_a_slow_writer_is_waited_for_and_a_hard_link_is_taken_at_once(
    service: ServiceProcess, stream: AsyncIterator[SSEEvent], tmp_path: Path
) -> None:
    folder = service.triggers_dir
    # The writer pauses mid-file for a second (the fault): longer than any fixed delay after the file's creation.
    script = f"""(printf '{{"reason": "slow '; sleep 1; printf 'writer"}}') > {folder / "slowone"}"""
    writer = await asyncio.create_subprocess_exec("sh", "-c", script)
    try:
        await ran(stream, "slow writer")
    finally:
        async with asyncio.timeout(10):
            assert await writer.wait() == 0
    original = tmp_path / "linked"
    original.write_text("linked in")
    started = time.monotonic()
    os.link(original, folder / "linked")  # a link has no writer, so no close event: taken at once
    await ran(stream, "linked")  # by its name: a hard link's content may be a file its maker could not read
    took = time.monotonic() - started
    assert took < 1, f"a hard link took {took:.2f}s to run"
    await until_consumed(folder)


async def test_a_file_being_written_when_a_run_ends_is_left_for_its_close(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob
) -> None:
    """The look at the folder after every run takes every file there, but not one whose writer still has
    it open: its reason would be cut (a run with the reason '{"reason": "slow ')."""
    service = service_factory("--command", fifo_job.command, "--interval", "600", "--log-level", "debug")
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(stream, lambda doc: doc["running"])
        with (service.triggers_dir / "slowone").open("w") as writer:
            writer.write('{"reason": "slow ')
            writer.flush()
            fifo_job.finish(0)  # the run ends while the file is half-written: the folder is looked at
            await asyncio.to_thread(service.wait_for_log, "left for later: ['slowone (being written)']")
            writer.write('writer"}')
        fifo_job.finish(0)  # lets the run the file starts end at once
        run = await ran(stream, "slow writer")
    assert run["trigger"] == "file"
    assert entries(service.triggers_dir) == []


# ------------------------------------------------------------------------------------- the folder a symlink
async def test_a_triggers_folder_swapped_for_a_symlink_is_refused_not_followed(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """``mv triggers triggers.moved; ln -s /some/folder triggers``: the service must not "watch it again" and
    read, delete and publish every file in the target folder."""
    service = service_factory("--command", "true", "--interval", "60")
    folder = service.triggers_dir
    follower = LogFollower(service)
    target = tmp_path / "someone-elses"
    target.mkdir()
    (target / "private-notes").write_text("not for the status page")
    try:
        async with aiohttp.ClientSession() as session:
            stream = sse_stream(session, service.url + "/api/snapshot/events")
            await next_status(stream, lambda d: not d["running"] and d["lastRun"] is not None)  # start-up run
            mark = follower.mark()
            folder.rename(tmp_path / "triggers.moved")
            folder.symlink_to(target, target_is_directory=True)
            await follower.until_count(f"triggers folder {folder} is a symlink; refusing it", at_least=1, since=mark)
            (target / "more-notes").write_text("also private")  # events in the target: looks, each refused
            assert sorted(p.name for p in target.iterdir()) == ["more-notes", "private-notes"], "nothing removed"
            assert (target / "private-notes").read_text() == "not for the status page"

            # A real folder again: watched and taken as before.
            folder.unlink()
            folder.mkdir(exist_ok=True)  # the service may have made it first: it re-creates a folder gone missing
            (folder / "real").write_text("a real trigger")
            run = await ran(stream, "a real trigger")
        runs = service.get_json("/api/snapshot/runs")["runs"]
        assert not [r for r in runs if "private" in r["reason"]], "no file of the target became a run"
        assert run["trigger"] == "file"
        assert sorted(p.name for p in target.iterdir()) == ["more-notes", "private-notes"]
        assert follower.count("is a symlink; refusing it", since=mark) == 1, follower.text(mark)
        assert follower.count(f"triggers folder {folder} is a real folder again", since=mark) == 1
    finally:
        follower.close()
