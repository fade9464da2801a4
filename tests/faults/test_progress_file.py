"""Fault injection: the progress file lies. A real service runs a real job (``sleep``) while the test, playing
a careless job, puts each kind of bad file where the progress file should be, several times over. Clients must
keep the last good state (HTTP and SSE), the service must log one warning per streak (not one per event) and
stay up, and the next good write must show up as usual.

One service serves the whole module (its run lasts longer than the module), to keep the suite fast; each
test leaves a good progress file behind."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.disk.atomic import MAX_DOCUMENT_BYTES, write_json_atomic
from orchestrator.live.progress import PROGRESS_FILE_NAME
from tests.faults.harness import LogFollower, peak_rss_kib
from tests.support import ServiceProcess, next_status, sse_stream, start_service

pytestmark = pytest.mark.process

REPEATS = 3
"""Each lie is told this many times: the warning must still be logged once."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def torn(path: Path, n: int) -> None:
    path.write_bytes(b'{"status": "running", "step": "half a docu' + b"%d" % n)  # in place, cut short


def not_json(path: Path, n: int) -> None:
    path.write_bytes(b"PROGRESS %d this is not JSON" % n)


def nested_too_deep(path: Path, n: int) -> None:
    path.write_bytes(b"[" * (50_000 + n))  # deeper than the parser's stack: RecursionError, not a JSONDecodeError


def not_an_object(path: Path, n: int) -> None:
    path.write_bytes([b"[1, 2, 3]", b'"running"', b"null"][n % 3])


def wrong_types(path: Path, n: int) -> None:
    docs = [
        b'{"status": "running", "step": "x", "progress": "half"}',
        b'{"status": 7, "step": "x", "progress": 10}',
        b'{"status": "running", "step": ["x"], "progress": 1e999}',
    ]
    path.write_bytes(docs[n % 3])


def number_too_long(path: Path, n: int) -> None:
    path.write_bytes(b'{"status": "running", "progress": ' + b"9" * (5000 + n) + b"}")  # int() refuses > 4300 digits


def huge(path: Path, n: int) -> None:
    if n % 2:  # a valid document, just far too big to be ours
        step = "x" * (2 * MAX_DOCUMENT_BYTES)
        path.write_text(f'{{"status": "running", "step": "{step}", "progress": 50}}')
    else:  # 8 GiB, sparse: reading it whole would take the service's memory with it
        with path.open("wb") as out:
            out.truncate(8 << 30)


def deleted(path: Path, n: int) -> None:
    _remove(path)


def directory(path: Path, n: int) -> None:
    _remove(path)
    path.mkdir()


def fifo(path: Path, n: int) -> None:
    _remove(path)
    os.mkfifo(path)  # no writer: a plain open() for reading would block the service's event loop for good


def device(path: Path, n: int) -> None:
    _remove(path)
    if n % 2:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # a /dev/zero of its own: endless zeros
    else:
        path.symlink_to("/dev/zero")


LIES: dict[str, tuple[Callable[[Path, int], None], int]] = {
    "torn": (torn, REPEATS),
    "not-json": (not_json, REPEATS),
    "nested-too-deep": (nested_too_deep, REPEATS),
    "not-an-object": (not_an_object, REPEATS),
    "wrong-types": (wrong_types, REPEATS),
    "number-too-long": (number_too_long, REPEATS),
    "huge": (huge, REPEATS),
    "deleted": (deleted, 1),
    "directory": (directory, REPEATS),
    "fifo": (fifo, REPEATS),
    "device": (device, REPEATS),
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    # Debug level: the monitor logs each further look at a bad file as a debug line, which lets the test
    # know every lie was read (and count the warnings against the reads).
    service = start_service(tmp_path_factory.mktemp("progress-lies"), "--command", "sleep 600", "--log-level", "debug")
    try:
        service.wait_ready()
        yield service
    finally:
        assert service.stop() == 0, service.logs()


def good(run_id: str, step: str, percent: int) -> dict[str, Any]:
    return {"status": "running", "step": step, "progress": percent, "runId": run_id}


@pytest.mark.parametrize("lie", list(LIES))
async def test_a_lying_progress_file_keeps_the_last_good_state(
    service: ServiceProcess, follower: LogFollower, lie: str
) -> None:
    tell, repeats = LIES[lie]
    path = service.data_dir / PROGRESS_FILE_NAME
    async with aiohttp.ClientSession() as session:
        stream = sse_stream(session, service.url + "/api/snapshot/events")
        first = await next_status(stream, lambda d: d["running"])
        run_id = first["currentRun"]["runId"]
        before = f"{lie}: before"
        write_json_atomic(path, good(run_id, before, 10))
        await next_status(stream, lambda d: d["progress"]["step"] == before)

        mark = follower.mark()
        problem = f"progress file {path}"
        for n in range(repeats):
            tell(path, n)
            # Wait until the service has looked at this lie (a warning the first time, a debug line after).
            await follower.until_count(problem, "unusable", at_least=n, since=mark)
            await follower.until_count(problem, "keeping the last good state", at_least=1, since=mark)
        peak = peak_rss_kib(service.proc.pid)

        # Clients keep the last good state.
        assert service.get_json("/api/snapshot/status")["progress"]["step"] == before
        assert service.get_json("/api/snapshot/progress")["step"] == before

        # The next good write shows up as usual; no state in between was made up from the lie.
        if path.is_dir() and not path.is_symlink():
            path.rmdir()  # a job's rename cannot replace a directory; whoever made it must remove it
        after = f"{lie}: after"
        write_json_atomic(path, good(run_id, after, 20))
        seen: list[str] = []
        doc = await next_status(stream, lambda d: seen.append(d["progress"]["step"]) or d["progress"]["step"] == after)
        assert doc["progress"]["progress"] == 20
        assert set(seen) <= {before, after}, seen

    await follower.until_count(problem, "readable again", at_least=1, since=mark)
    assert follower.count(problem, "keeping the last good state", since=mark) == 1, follower.text(mark)
    reads = follower.count(problem, "unusable", since=mark)
    assert reads >= repeats - 1, f"every lie was looked at\n{follower.text(mark)}"
    assert follower.count("Traceback", since=mark) == 0, follower.text(mark)
    # What is read is capped: the 8 GiB file did not come into memory (peak resident size, not current).
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"
    assert service.proc.poll() is None
