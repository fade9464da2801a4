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
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.progress import PROGRESS_FILE_NAME
from orchestrator.state import STATE_FILE_NAME
from tests.faults.harness import FifoJob, FileChanges, LogFollower, ci, remount, tmpfs
from tests.support import ServiceProcess, next_status, sse_stream

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
            assert on_disk(data_mount, STATE_FILE_NAME)["current"]["runId"] == first["runId"]
            assert dropped.read_text() == "kept while the disk is broken", "a trigger file stays until saved"

            service.wait_for_log(f"run {first['runId']} ended error")
            log = service.logs()
            assert log.count("cannot save state") == 1, log
            assert log.count("cannot write progress file") == 1, log
            assert "Traceback" not in log
            assert service.proc.poll() is None

            # Writable again: the file left in the folder is taken at the next look, and its run lands on disk.
            repair(data_mount)
            mark = follower.mark()
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
        saved = on_disk(data_mount, STATE_FILE_NAME)
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
    assert on_disk(data, STATE_FILE_NAME)["lastRun"]["runId"] == doc["lastRun"]["runId"]
