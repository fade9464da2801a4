"""Fault injection: the data folder stops taking writes while the service runs, because it is full (ENOSPC) or
was remounted read-only (EROFS). Provoked for real on a tiny tmpfs mounted as the service's data folder (we run
as root with CAP_SYS_ADMIN here and in CI; without it these tests skip locally and fail under ``CI=true``).

While the folder refuses writes, runs go on: their outcome still reaches HTTP and SSE clients from memory, each
kind of failing write is logged once (not once per write), and the service does not die. A trigger that cannot
be saved is not taken (503; a trigger file stays in its folder). Once the folder takes writes again, the file
left behind runs and lands on disk as usual."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import urllib.error
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.core.events import iso
from orchestrator.disk.atomic import TEMP_FOLDER_NAME
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.store.history import HISTORY_FILE_NAME
from orchestrator.store.journal import JOURNAL_FILE_NAME
from orchestrator.store.lock import LOCK_FILE_NAME
from orchestrator.store.runlogs import LOGS_DIR_NAME
from orchestrator.store.schema import SCHEMA
from orchestrator.store.statefile import STATE_FILE_NAME
from tests.faults.harness import FifoJob, FileChanges, LogFollower, ci, remount, tmpfs, watch_everything
from tests.support import ServiceProcess, job_command, next_status, saved_state, sse_stream, umask

pytestmark = pytest.mark.process

Doc = dict[str, Any]


def fill(folder: Path) -> None:
    """Write until the file system says it is full (unbuffered: nothing is held back to fail later)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def unfill(folder: Path) -> None:
    (folder / "filler").unlink()


def read_only(folder: Path) -> None:
    remount(folder, "ro")


def writable(folder: Path) -> None:
    remount(folder, "rw")


def refuses_writes(folder: Path) -> int:
    """The errno a small write in ``folder`` fails with (asserting that it fails)."""
    try:
        (folder / "probe").write_bytes(b"x" * 4096)
    except OSError as exc:
        with contextlib.suppress(OSError):
            (folder / "probe").unlink()
        return exc.errno or 0
    raise AssertionError(f"{folder} still takes writes")


FAULTS: dict[str, tuple[Callable[[Path], None], Callable[[Path], None], int]] = {
    "full": (fill, unfill, errno.ENOSPC),
    "read-only": (read_only, writable, errno.EROFS),
}


@pytest.fixture
def data_mount(tmp_path: Path) -> Iterator[Path]:
    try:
        with tmpfs(tmp_path / "data", "512k") as mounted:
            yield mounted
    except PermissionError as exc:
        if ci():
            raise
        pytest.skip(f"needs root with CAP_SYS_ADMIN to mount a tmpfs: {exc}")


@pytest.fixture
def fifo_job(tmp_path: Path) -> Iterator[FifoJob]:
    job = FifoJob(tmp_path / "job")
    yield job
    job.close()


def refused_trigger(service: ServiceProcess, reason: str) -> urllib.error.HTTPError:
    try:
        service.post_json("/api/snapshot/trigger", {"reason": reason})
    except urllib.error.HTTPError as exc:
        return exc
    raise AssertionError("a trigger that cannot be saved was accepted")


def on_disk(data: Path, name: str) -> Doc:
    doc: Doc = json.loads((data / name).read_text())
    return doc


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_data_folder_that_refuses_writes_does_not_lose_the_outcome(
    data_mount: Path, fifo_job: FifoJob, service_factory: Callable[..., ServiceProcess], fault: str
) -> None:
    break_it, repair, expected_errno = FAULTS[fault]
    service = service_factory("--command", fifo_job.command)
    follower = LogFollower(service)
    try:
        async with aiohttp.ClientSession() as session:
            stream = sse_stream(session, service.url + "/api/snapshot/events")
            first = (await next_status(stream, lambda d: d["running"]))["currentRun"]
            # Once this report is on the page it is on disk too: no write of the service is in flight (a
            # file open for writing would make the remount fail with EBUSY).
            fifo_job.send("PROGRESS 10 ready")
            await next_status(stream, lambda d: d["progress"]["step"] == "ready")

            break_it(data_mount)
            assert refuses_writes(data_mount) == expected_errno

            # Writes fail from here on. A trigger cannot be saved, so it is not taken: an HTTP trigger gets a
            # 503 that says why (a 202 would promise a run that a crash could lose), and a trigger file stays
            # in the folder, looked at again until the state can be saved.
            for n in range(1, 4):
                refused = refused_trigger(service, f"during-{n}")
                assert refused.code == 503
                assert refused.headers["Retry-After"] == "5"
                body = json.load(refused)
                assert body["success"] is False
                assert "the state file cannot be written" in body["message"], body
                assert os.strerror(expected_errno) in body["message"], body
            dropped = service.triggers_dir / "during-file"
            dropped.write_text("kept while the disk is broken")
            await follower.until_count("cannot save state", at_least=1)
            fifo_job.send("PROGRESS 50 halfway")
            # Live progress comes from memory while the file cannot take it.
            live = await next_status(stream, lambda d: d["progress"]["step"] == "halfway")
            assert (live["running"], live["progress"]["progress"], live["pendingTriggers"]) == (True, 50, 0)
            fifo_job.finish(4)
            doc = await next_status(stream, lambda d: (d["lastRun"] or {}).get("runId") == first["runId"])

            # The outcome, from memory, over SSE and HTTP alike.
            assert not doc["running"]
            assert (doc["lastRun"]["status"], doc["lastRun"]["exitCode"]) == ("error", 4)
            assert doc["progress"]["status"] == "error"
            status = service.get_json("/api/snapshot/status")
            assert (status["lastRun"]["runId"], status["lastRun"]["status"]) == (first["runId"], "error")
            assert status["pendingTriggers"] == 0, "nothing that could not be saved was taken"
            progress = service.get_json("/api/snapshot/progress")
            assert (progress["runId"], progress["status"]) == (first["runId"], "error")
            # ...and not from the disk, which still shows the first run going on.
            assert on_disk(data_mount, PROGRESS_FILE_NAME)["step"] == "ready"
            assert saved_state(data_mount)["current"]["runId"] == first["runId"]
            assert dropped.read_text() == "kept while the disk is broken", "a trigger file stays until saved"

            service.wait_for_log(f"run {first['runId']} ended error")
            log = service.logs()
            assert log.count("cannot save state") == 1, log
            assert log.count("cannot write progress file") == 1, log
            assert "Traceback" not in log
            assert service.proc.poll() is None

            # Writable again: the file left in the folder is taken at the next look, and its run lands on disk.
            mark = follower.mark()  # before the repair: the first save after it may come at once
            repair(data_mount)
            doc = await next_status(stream, lambda d: d["running"], timeout=10)
            again = doc["currentRun"]
            assert again["reason"] == "kept while the disk is broken"
            removal = FileChanges(dropped)  # removed right after its trigger is saved (the run may start first)
            try:
                await removal.until(lambda: not dropped.exists(), "removal of the saved trigger file")
            finally:
                removal.close()
            await follower.until_count("state saved to", "again", at_least=1, since=mark)
            fifo_job.finish()
            await next_status(stream, lambda d: (d["lastRun"] or {}).get("runId") == again["runId"])
            # ...and an HTTP trigger is taken again.
            assert service.post_json("/api/snapshot/trigger", {"reason": "after the repair"})[0] == 202
            doc = await next_status(stream, lambda d: d["running"] and d["currentRun"]["reason"] == "after the repair")
            again = doc["currentRun"]
            fifo_job.finish()
            await next_status(stream, lambda d: (d["lastRun"] or {}).get("runId") == again["runId"])
        service.wait_for_log(f"run {again['runId']} completed")
        saved = saved_state(data_mount)
        assert (saved["lastRun"]["runId"], saved["lastRun"]["status"], saved["current"]) == (
            again["runId"],
            "completed",
            None,
        )
        # The outcome's progress write lands a moment after the outcome is published.
        written = FileChanges(data_mount / PROGRESS_FILE_NAME)
        try:
            await written.until(
                lambda: (
                    on_disk(data_mount, PROGRESS_FILE_NAME).get("runId") == again["runId"]
                    and on_disk(data_mount, PROGRESS_FILE_NAME).get("status") == "completed"
                ),
                "outcome of the run after the repair",
            )
        finally:
            written.close()
        # Each problem and its end were logged once.
        assert service.logs().count("cannot save state") == 1
    finally:
        follower.close()
        # Stop before the mount goes, so the service never sees its data folder vanish.
        if service.proc.poll() is None:
            assert service.stop() == 0, service.logs()


def nested_too_deep(path: Path) -> None:
    path.write_text("[" * 100_000)  # parsing it raised RecursionError: the service could not start at all


def fifo(path: Path) -> None:
    os.mkfifo(path)  # no writer: a plain open() for reading blocked the start-up for good


@pytest.mark.parametrize("lie", [nested_too_deep, fifo], ids=["nested-too-deep", "fifo"])
async def test_a_state_file_that_lies_at_start_is_set_aside(
    tmp_path: Path, service_factory: Callable[..., ServiceProcess], lie: Callable[[Path], None]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lie(data / STATE_FILE_NAME)
    service = service_factory("--command", "true")  # fails if the service does not come up
    service.wait_for_log("is unusable")
    assert (data / f"{STATE_FILE_NAME}.corrupt").exists(), "kept for a post-mortem"
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        doc = await next_status(stream, lambda d: (d["lastRun"] or {}).get("status") == "completed")
    service.wait_for_log(f"run {doc['lastRun']['runId']} completed")
    assert saved_state(data)["lastRun"]["runId"] == doc["lastRun"]["runId"]


# ------------------------------------------------------------------------------- symlinks and modes in data/
PRINTING_JOB = job_command("print('hello from the job', flush=True)\n")


async def finished_run(service: ServiceProcess, reason: str | None = None) -> Doc:
    """The last run once it has ended (the start-up run, or the one with ``reason``)."""
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        doc = await next_status(
            events,
            lambda d: (
                d["lastRun"] is not None and not d["running"] and (reason is None or d["lastRun"]["reason"] == reason)
            ),
        )
    run: Doc = doc["lastRun"]
    assert run["status"] == "completed", run
    return run


class TreeChanges(FileChanges):
    """Like :class:`FileChanges`, for a file whose folder may not exist yet: wakes on any event under ``root``."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self._changed, self._observer = watch_everything(root, recursive=True)


async def file_holds(path: Path, expected: bytes, *, suffix: bool = False) -> None:
    """Wait (on inotify, bounded) until ``path`` (somewhere under a data folder) holds ``expected`` (or ends
    with it)."""

    def holds() -> bool:
        try:
            content = path.read_bytes()
        except OSError:
            return False
        return content.endswith(expected) if suffix else content == expected

    root = path.parent if path.parent.is_dir() else path.parent.parent
    changes = TreeChanges(path, root)
    try:
        await changes.until(holds, f"{len(expected)} bytes")
    finally:
        changes.close()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as response:
        return response.status, await response.read()


def plant_file(data: Path, name: str, victim: Path) -> None:
    """``data/<name>`` becomes a symlink to ``victim``, a file with content of its own."""
    victim.write_text(f"not the service's: {name}\n")
    os.symlink(victim, data / name)


def plant_folder(data: Path, name: str, victim: Path) -> None:
    """``data/<name>`` becomes a symlink to ``victim``, a folder holding a file named like a run log."""
    victim.mkdir()
    (victim / "20200101T000000Z-0a0a0a.log").write_text("not the service's either\n")
    os.symlink(victim, data / name, target_is_directory=True)


def old_history(data: Path, run_id: str, started: datetime) -> Doc:
    """A history as the previous version left it: WAL mode, one finished run whose log is in ``logs/``."""
    record = {
        "runId": run_id,
        "status": "completed",
        "trigger": "timer",
        "reason": "",
        "triggers": [{"source": "timer", "at": iso(started), "reason": ""}],
        "triggerCount": 1,
        "startedAt": iso(started),
        "finishedAt": iso(started + timedelta(seconds=5)),
        "exitCode": 0,
    }
    db = sqlite3.connect(data / HISTORY_FILE_NAME, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.execute(
            "INSERT INTO runs (run_id, started_at, record, log_path) VALUES (?, ?, ?, ?)",
            (run_id, iso(started), json.dumps(record), f"logs/{run_id}.log"),
        )
    finally:
        db.close()
    return record


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


PLANTS: dict[str, Callable[[Path, Path], None]] = {
    LOCK_FILE_NAME: lambda data, victim: plant_file(data, LOCK_FILE_NAME, victim),
    JOURNAL_FILE_NAME: lambda data, victim: plant_file(data, JOURNAL_FILE_NAME, victim),
    LOGS_DIR_NAME: lambda data, victim: plant_folder(data, LOGS_DIR_NAME, victim),
    TEMP_FOLDER_NAME: lambda data, victim: plant_folder(data, TEMP_FOLDER_NAME, victim),
    "runs.sqlite3-wal": lambda data, victim: plant_file(data, "runs.sqlite3-wal", victim),
    "runs.sqlite3-shm": lambda data, victim: plant_file(data, "runs.sqlite3-shm", victim),
}


@pytest.mark.parametrize("name", list(PLANTS))
async def test_a_symlink_planted_in_the_data_folder_is_never_written_through(
    tmp_path: Path, service_factory: Callable[..., ServiceProcess], name: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old_history(data, "20200101T000000Z-0b0b0b", datetime.now(UTC) - timedelta(days=1))
    victim = tmp_path / "victim"
    PLANTS[name](data, victim)
    before = snapshot(victim) if victim.is_dir() else {"": victim.read_bytes()}

    service = service_factory("--command", PRINTING_JOB, "--keep-runs", "1")
    run = await finished_run(service)
    await file_holds(data / LOGS_DIR_NAME / f"{run['runId']}.log", b"hello from the job\n", suffix=True)
    service.wait_for_log(f"run {run['runId']} completed")
    assert service.stop() == 0, service.logs()

    # The target is as it was: nothing truncated, appended, created or removed there.
    assert (snapshot(victim) if victim.is_dir() else {"": victim.read_bytes()}) == before
    assert not (data / name).is_symlink(), "the link was replaced by the service's own file or folder"
    log = service.logs()
    assert sum(name in line and "symlink" in line for line in log.splitlines()) == 1, log
    # The history was not set aside: the old run is still there (until retention removes it, by its rule).
    assert not (data / f"{HISTORY_FILE_NAME}.corrupt").exists(), log
    assert "Traceback" not in log


async def test_a_run_log_swapped_for_a_symlink_mid_run_is_not_written_through(
    tmp_path: Path, fifo_job: FifoJob, service_factory: Callable[..., ServiceProcess]
) -> None:
    service = service_factory("--command", fifo_job.command)
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        run = (await next_status(stream, lambda d: d["running"]))["currentRun"]
        path = service.data_dir / LOGS_DIR_NAME / f"{run['runId']}.log"
        fifo_job.send("first line, long enough for the marker that stands in for it later " + "." * 100)
        await file_holds(path, b"." * 100 + b"\n", suffix=True)
        written = path.stat().st_size

        victim = tmp_path / "victim"
        victim.write_text("someone else's file\n")
        path.unlink()
        os.symlink(victim, path)
        fifo_job.send("second line", "third line")
        fifo_job.finish()
        await next_status(stream, lambda d: (d["lastRun"] or {}).get("runId") == run["runId"])
        await file_holds(path, b"third line\n", suffix=True)
        assert victim.read_text() == "someone else's file\n"
        assert not path.is_symlink()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # The file keeps its offsets: the lost part is one marker line of the same length, then the rest.
        content = path.read_bytes()
        lost, rest = content[:written], content[written:]
        assert lost.endswith(b"\n") and lost.count(b"\n") == 1 and b"replaced by a symlink" in lost, content
        assert [line.split(" ", 2)[2] for line in rest.decode().splitlines()] == ["second line", "third line"]
        async with session.get(f"{service.url}/api/snapshot/runs/{run['runId']}/log") as response:
            # The marker's padding is a hole in the file (NULs), served as spaces.
            assert (response.status, await response.read()) == (200, content.replace(b"\0", b" "))
    service.wait_for_log(f"run {run['runId']} completed")
    log = service.logs()
    assert sum("replaced by a symlink" in line for line in log.splitlines()) == 1, log
    assert "Traceback" not in log


def owner_only(data: Path) -> list[str]:
    """Everything under ``data`` whose mode lets anyone but its owner in."""
    loose = []
    for path in [data, *data.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # gone between the listing and the look (SQLite's -shm, an atomic write's temp file)
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISLNK(info.st_mode) and mode & 0o077:
            loose.append(f"{path.relative_to(data.parent)} {mode:o}")
    return loose


async def test_everything_in_the_data_folder_is_created_owner_only_whatever_the_umask(
    tmp_path: Path, service_factory: Callable[..., ServiceProcess]
) -> None:
    with umask(0o022):  # inherited by the service
        service = service_factory("--command", PRINTING_JOB)
    run = await finished_run(service)
    data = service.data_dir
    await file_holds(data / LOGS_DIR_NAME / f"{run['runId']}.log", b"hello from the job\n", suffix=True)
    service.wait_for_log(f"run {run['runId']} completed")
    names = {p.name for p in data.iterdir()}
    assert {LOCK_FILE_NAME, STATE_FILE_NAME, PROGRESS_FILE_NAME, HISTORY_FILE_NAME, LOGS_DIR_NAME} <= names
    assert owner_only(data) == []
    assert service.stop() == 0


async def test_a_data_folder_of_the_previous_version_is_read_and_tightened(
    tmp_path: Path, service_factory: Callable[..., ServiceProcess]
) -> None:
    """As the previous version left it under umask 022: files 0644, folders 0755, a history with a run whose
    log is in logs/, a state file naming that run (a minute ago: no run is due at start)."""
    data = tmp_path / "data"
    run_id = "20260101T000000Z-0c0c0c"
    started = datetime.now(UTC) - timedelta(minutes=1)
    with umask(0o022):
        data.mkdir(mode=0o755)
        record = old_history(data, run_id, started)
        (data / LOGS_DIR_NAME).mkdir(mode=0o755)
        (data / LOGS_DIR_NAME / f"{run_id}.log").write_text("00:00:00.000 out from the old version\n")
        state = {"version": 1, "lastRun": record, "current": None, "pending": []}
        (data / STATE_FILE_NAME).write_text(json.dumps(state))
        (data / PROGRESS_FILE_NAME).write_text(json.dumps({"status": "completed", "step": "done", "progress": 100}))
        (data / LOCK_FILE_NAME).write_text("{}\n")
    loose = owner_only(data)
    assert len(loose) >= 6, loose

    service = service_factory("--command", PRINTING_JOB, "--interval", "60")
    assert service.get_json("/api/snapshot/status")["lastRun"]["runId"] == run_id
    assert [r["runId"] for r in service.get_json("/api/snapshot/runs")["runs"]] == [run_id]
    async with aiohttp.ClientSession() as session:
        status, body = await get(session, f"{service.url}/api/snapshot/runs/{run_id}/log")
    assert (status, body) == (200, b"00:00:00.000 out from the old version\n")
    # Tightened at start, said in one line.
    assert owner_only(data) == [], owner_only(data)
    lines = [line for line in service.logs().splitlines() if "took group and other permissions away" in line]
    assert len(lines) == 1, service.logs()
    # It still takes runs, and they land in the same history.
    assert service.post_json("/api/snapshot/trigger", {"reason": "after the upgrade"})[0] == 202
    run = await finished_run(service, reason="after the upgrade")
    assert [r["runId"] for r in service.get_json("/api/snapshot/runs")["runs"]] == [run["runId"], run_id]
    assert service.stop() == 0
    assert owner_only(data) == []
