"""Run logs: a real job's stdout and stderr in ``data/logs/<runId>.log``, read over HTTP (``Range``, ``?offset=``)
and followed live over SSE; retention by count; a logs folder that refuses writes; a job that prints too much."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.cli.main import main
from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.core.runevents import RunFinished
from orchestrator.job.protocol import Pipe, RunContext
from orchestrator.job.subprocessjob import SubprocessJob
from orchestrator.ops.retention import Retention
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.runlogs import RunLogs, read_range
from tests.faults.harness import FifoJob, FileChanges
from tests.support import ServiceProcess, job_command, next_status, sse_stream

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (out|err) (.*)$")
T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)

CHATTY_JOB = job_command(
    "import sys\n"
    "print('PROGRESS 10 starting', flush=True)\n"
    "print('to stdout: ünïcode', flush=True)\n"
    "print('to stderr', file=sys.stderr, flush=True)\n"
    "print('', flush=True)\n"
    "print('PROGRESS 90 almost', flush=True)\n"
)


@pytest.fixture
def fifo_job(tmp_path: Path) -> Iterator[FifoJob]:
    job = FifoJob(tmp_path / "job")
    yield job
    job.close()


async def finished_run(service: ServiceProcess, status: str = "completed") -> dict[str, Any]:
    """The start-up run (no run on record: one starts at once), once it has ended."""
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        doc = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
    run: dict[str, Any] = doc["lastRun"]
    assert run["status"] == status, run
    return run


async def get(session: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, bytes, Any]:
    async with session.get(url, headers=headers) as response:
        return response.status, await response.read(), response.headers


async def file_holds(path: Path, expected: bytes, *, suffix: bool = False) -> None:
    """Wait (on inotify, bounded) until ``path`` holds ``expected`` (or ends with it): a run's last lines land
    a moment after its end is published (readers get them from memory meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def holds() -> bool:
        content = path.read_bytes() if path.exists() else None
        return content is not None and (content.endswith(expected) if suffix else content == expected)

    changes = FileChanges(path)
    try:
        await changes.until(holds, f"{len(expected)} bytes")
    finally:
        changes.close()


@pytest.mark.process
async def test_a_job_s_stdout_and_stderr_go_to_its_log_and_over_http(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    service = service_factory("--command", CHATTY_JOB, "--interval", "60")
    run = await finished_run(service)
    url = f"{service.url}/api/snapshot/runs/{run['runId']}/log"
    async with aiohttp.ClientSession() as session:
        status, body, headers = await get(session, url)
        assert status == 200, body
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["Accept-Ranges"] == "bytes"
        parsed = [LINE.match(line) for line in body.decode().splitlines()]
        assert all(parsed), body
        # Every line, progress lines and blank ones too; stderr may interleave with stdout, in its own order.
        lines = [(m.group(1), m.group(2)) for m in parsed if m]
        assert [text for pipe, text in lines if pipe == "out"] == [
            "PROGRESS 10 starting",
            "to stdout: ünïcode",
            "",
            "PROGRESS 90 almost",
        ]
        assert [text for pipe, text in lines if pipe == "err"] == ["to stderr"]
        await file_holds(service.data_dir / "logs" / f"{run['runId']}.log", body)
        size = len(body)

        # Ranges: a-b, a-, -n (206 + Content-Range); ?offset=N (200).
        for spec, expected in [("bytes=0-9", body[:10]), ("bytes=5-", body[5:]), ("bytes=-7", body[-7:])]:
            status, part, headers = await get(session, url, Range=spec)
            assert (status, part) == (206, expected), spec
            start = body.index(expected) if spec != "bytes=-7" else size - 7
            assert headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{size}"
        status, part, _ = await get(session, url, Range=f"bytes=3-{size + 100}")
        assert (status, part) == (206, body[3:])
        status, part, _ = await get(session, url + "?offset=12")
        assert (status, part) == (200, body[12:])
        status, part, _ = await get(session, url + f"?offset={size}")
        assert (status, part) == (200, b""), "caught up: nothing new yet"

        # Past the end: 416, with the size.
        for ask in [{"Range": f"bytes={size}-"}, {"Range": "bytes=-0"}]:
            status, answer, headers = await get(session, url, **ask)
            assert (status, headers["Content-Range"]) == (416, f"bytes */{size}"), answer
        for beyond in [size + 1, 10**40]:
            status, answer, _ = await get(session, url + f"?offset={beyond}")
            assert status == 416 and b"beyond the end" in answer
        # A bad offset: 400 with a message. A Range that is not one byte range is ignored (as HTTP allows).
        for bad in ["-1", "abc", "1e3", "9" * 5000]:
            status, answer, _ = await get(session, f"{url}?offset={bad}")
            assert status == 400, (bad, answer)
            assert json.loads(answer)["message"].startswith("offset must be a byte offset")
        for ignored in ["bytes=9-3", "bytes=0-1,5-6", "bytes=-", "items=0-1", "garbage"]:
            status, answer, _ = await get(session, url, Range=ignored)
            assert (status, answer) == (200, body), ignored
        status, answer, _ = await get(session, url + "?offset=3", Range="bytes=0-1")
        assert (status, answer) == (200, body[3:]), "the offset wins"

        # 404s say which: no such run, a run without a log, a log whose file is gone.
        status, answer, _ = await get(session, f"{service.url}/api/snapshot/runs/nope/log")
        assert (status, json.loads(answer)["message"]) == (404, "No run 'nope' in the history")
        old = RunRecord("20200101T000000Z-000001", (Trigger(Source.TIMER, T0),), T0, status=RunStatus.COMPLETED)
        SqliteHistory(service.data_dir / HISTORY_FILE_NAME).record(old)  # as recorded before run logs existed
        status, answer, _ = await get(session, f"{service.url}/api/snapshot/runs/{old.run_id}/log")
        assert status == 404 and "has no log" in json.loads(answer)["message"]
        (service.data_dir / "logs" / f"{run['runId']}.log").unlink()
        status, answer, _ = await get(session, url)
        assert status == 404 and "is gone" in json.loads(answer)["message"]


@pytest.mark.process
async def test_the_live_stream_follows_a_running_job_and_ends_with_its_record(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob
) -> None:
    service = service_factory("--command", fifo_job.command, "--interval", "60")
    async with aiohttp.ClientSession() as session:
        status_events = sse_stream(session, service.url + "/api/snapshot/events")
        run_id = (await next_status(status_events, lambda d: d["running"]))["currentRun"]["runId"]
        fifo_job.send("first line")
        url = f"{service.url}/api/snapshot/runs/{run_id}/log/stream"
        events = sse_stream(session, url)
        texts: list[str] = []
        async with asyncio.timeout(10):
            event = await anext(events)
            assert event.event == "log"
            assert event.json()["offset"] == 0
            texts.append(event.json()["text"])
            health = await (await session.get(service.url + "/health")).json()
            # Counted apart: sseClients is the status streams (the pages), logStreams the live logs.
            assert (health["sseClients"], health["logStreams"]) == (1, 1)
            fifo_job.send("second line", "PROGRESS 50 half")
            while "PROGRESS 50 half" not in "".join(texts):
                event = await anext(events)
                assert (event.event, event.json()["offset"]) == ("log", len("".join(texts).encode()))
                assert event.id == str(event.json()["offset"] + len(event.json()["text"].encode()))
                texts.append(event.json()["text"])
            fifo_job.finish()
            end = await anext(events)
        assert end.event == "end"
        assert (end.json()["runId"], end.json()["status"]) == (run_id, "completed")
        lines = "".join(texts).splitlines()
        assert [LINE.match(line).group(2) for line in lines] == ["first line", "second line", "PROGRESS 50 half"]  # type: ignore[union-attr]

        # A finished run: what the file holds from the offset, then end at once; Last-Event-ID resumes too.
        first = len(texts[0].encode())
        async with asyncio.timeout(10):
            replay = [e async for e in sse_stream(session, f"{url}?offset={first}")]
            assert [e.event for e in replay] == ["log", "end"]
            assert replay[0].json() == {"offset": first, "text": "".join(texts)[len(texts[0]) :]}
            resumed = [e async for e in sse_stream(session, url, headers={"Last-Event-ID": replay[0].id or ""})]
            assert [e.event for e in resumed] == ["end"]
        await file_holds(service.data_dir / "logs" / f"{run_id}.log", "".join(texts).encode())
        async with session.get(f"{url}?offset=99999") as response:
            assert response.status == 416
        async with session.get(f"{service.url}/api/snapshot/runs/nope/log/stream") as response:
            assert response.status == 404


@pytest.mark.process
async def test_keep_runs_removes_old_runs_with_their_logs_and_orphans(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    orphan = logs / "20200101T000000Z-0a0b0c.log"  # a log whose record is gone (a crash between the two)
    orphan.write_text("old\n")
    (logs / "notes.txt").write_text("not a run log: left alone\n")
    service = service_factory("--command", job_command("print('hi')"), "--interval", "60", "--keep-runs", "2")
    runs = [await finished_run(service)]
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        for n in range(3):
            assert service.post_json("/api/snapshot/trigger", {"reason": f"run {n}"})[0] == 202
            doc = await next_status(events, lambda d, n=n: (d["lastRun"] or {}).get("reason") == f"run {n}")
            runs.append(doc["lastRun"])
    # After the 4th run: the 1st went after the 3rd, the 2nd after the 4th.
    service.wait_for_log(f"removed 1 old run(s) with their logs: {runs[1]['runId']}")
    kept = [run["runId"] for run in runs[2:]]
    assert [run["runId"] for run in service.get_json("/api/snapshot/runs")["runs"]] == kept[::-1]
    last = logs / f"{kept[-1]}.log"
    await file_holds(last, b"hi\n", suffix=True)  # the last run's line lands a moment after its end
    assert sorted(p.name for p in logs.iterdir()) == sorted([*(f"{r}.log" for r in kept), "notes.txt"])
    assert "Traceback" not in service.logs()


@pytest.mark.process
async def test_a_logs_folder_that_refuses_writes_is_logged_once_and_runs_go_on(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "logs").write_text("a file where the logs folder should be\n")
    service = service_factory("--command", CHATTY_JOB, "--interval", "60")
    first = await finished_run(service)
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        assert service.post_json("/api/snapshot/trigger", {"reason": "second"})[0] == 202
        second = (await next_status(events, lambda d: (d["lastRun"] or {}).get("reason") == "second"))["lastRun"]
        assert (second["status"], service.get_json(f"/api/snapshot/runs/{first['runId']}")["status"]) == (
            "completed",
            "completed",
        )
        # Not on disk, but not lost: the log is served from memory meanwhile.
        status, body, _ = await get(session, f"{service.url}/api/snapshot/runs/{first['runId']}/log")
        assert status == 200 and b"to stderr" in body
        service.wait_for_log("cannot write run logs")
        assert service.logs().count("cannot write run logs") == 1, service.logs()

        # The folder can be made again: the lines kept in memory land.
        (data / "logs").unlink()
        service.wait_for_log("are written again")
        assert (data / "logs" / f"{first['runId']}.log").read_bytes() == body
    assert "Traceback" not in service.logs()


# ------------------------------------------------------------------------------------- in-process: the bounds
def _ctx(tmp_path: Path, logs: RunLogs, run_id: str) -> RunContext:
    return RunContext(run_id, Source.HTTP, "", tmp_path / "progress.json", logs.open(run_id))


def _record(run_id: str, started: datetime = T0) -> RunRecord:
    return RunRecord(run_id, (Trigger(Source.HTTP, started),), started, status=RunStatus.COMPLETED, finished_at=started)


@pytest.mark.process
async def test_a_job_that_prints_too_much_is_cut_with_bounded_memory_and_few_writes(tmp_path: Path) -> None:
    cap = 1024 * 1024
    logs = RunLogs(tmp_path, FakeClock(T0), max_bytes=cap, max_pending=256 * 1024)
    run_id = "20260120T100000Z-00000a"
    script = "import sys\nfor i in range(100_000): sys.stdout.write(f'line {i} ' + 'x' * 40 + '\\n')\n"
    result = await SubprocessJob([sys.executable, "-c", script]).run(_ctx(tmp_path, logs, run_id), lambda parsed: None)
    assert result.status is RunStatus.COMPLETED
    logs.close(_record(run_id))
    await logs.stop()
    content = (tmp_path / "logs" / f"{run_id}.log").read_bytes()
    assert cap - 400 < len(content) <= cap, "never past the limit, marker included"
    *lines, marker = content.decode().splitlines()
    assert lines == [f"10:00:00.000 out line {i} {'x' * 40}" for i in range(len(lines))], "none dropped before the cut"
    # Truthful: the size the log had when cut (the marker follows it), on the pipe that overflowed.
    kept = len(content) - len(marker) - 1
    assert marker == (
        f"10:00:00.000 out [snapshot-orchestrator] log cut at {kept} bytes (limit {cap}): "
        "this line and later ones are not kept"
    )
    assert logs.peak_pending <= 256 * 1024
    assert logs.writes < 100, f"{logs.writes} writes for 100,000 lines"


async def test_lines_wait_in_memory_while_the_disk_refuses_then_land_with_one_marker(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("in the way")
    logs = RunLogs(tmp_path, FakeClock(T0), max_pending=64 * 1024)
    run_id = "20260120T100000Z-00000b"
    output = logs.open(run_id)
    output(Pipe.ERR, "line 0")
    await logs.flush()  # fails: from here on the writer knows the disk refuses writes
    for i in range(1, 5000):
        output(Pipe.OUT if i % 2 else Pipe.ERR, f"line {i}")
        if i % 500 == 0:
            await asyncio.sleep(0)
    live = logs.get(run_id)
    assert live is not None
    memory, from_file = live.read(0, 10**9)
    assert from_file is None and memory.startswith(b"10:00:00.000 err line 0\n")
    assert logs.peak_pending <= 64 * 1024 + 200
    (tmp_path / "logs").unlink()  # repaired: what waited in memory lands, then one marker for the rest
    logs.close(_record(run_id))
    await logs.stop()
    *lines, marker = (tmp_path / "logs" / f"{run_id}.log").read_text().splitlines()
    assert lines == [f"10:00:00.000 {'out' if i % 2 else 'err'} line {i}" for i in range(len(lines))]
    assert 1000 < len(lines) < 5000
    assert marker.startswith(f"10:00:00.000 err [snapshot-orchestrator] {5000 - len(lines)} lines dropped: ")
    assert "the disk refused writes" in marker
    assert logs.get(run_id) is None, "written: the file is the whole log now"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-runs", "0"], "--keep-runs must be at least 1, got 0"),
        (["--keep-runs", "many"], "--keep-runs must be a whole number of runs, got 'many'"),
        # Past 2**63 SQLite cannot take it: retention failed at every run and the stop exited 1.
        (["--keep-runs", "9223372036854775808"], "--keep-runs must be at most 1000000, got '9223372036854775808'"),
        (["--keep-days", "-1"], "--keep-days must be zero (no age limit) or more days, got '-1'"),
        (["--keep-days", "nan"], "--keep-days must be zero (no age limit) or more days, got 'nan'"),
    ],
)
def test_bad_retention_settings_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *args]) == 2
    assert capsys.readouterr().err == f"snapshot-orchestrator: error: {message}\n"


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.cli.main import build_parser, settings_from

    monkeypatch.setenv("SNAPSHOT_KEEP_RUNS", "7")
    monkeypatch.setenv("SNAPSHOT_KEEP_DAYS", "1.5")
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert (settings.store.keep_runs, settings.store.keep_days) == (7, 1.5)
    settings = settings_from(build_parser().parse_args(["serve", "--keep-runs", "3"]))
    assert settings.store.keep_runs == 3


async def test_keep_days_removes_runs_older_than_the_cut_off_with_their_logs(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    logs = RunLogs(tmp_path, clock)
    retention = Retention(history, logs, clock, keep_runs=100, keep_days=1.5)
    (tmp_path / "logs").mkdir()
    ages = {"20260117T100000Z-00000a": 3.0, "20260118T220000Z-00000b": 1.5, "20260119T100000Z-00000c": 1.0}
    for run_id, days in ages.items():
        history.record(_record(run_id, T0 - timedelta(days=days)), log_path=logs.relative_path(run_id))
        (tmp_path / "logs" / f"{run_id}.log").write_text("x\n")
    retention.run_finished(RunFinished(_record("20260119T100000Z-00000c")))
    await retention.wait()
    assert [run.run_id for run in history.page().runs] == ["20260119T100000Z-00000c", "20260118T220000Z-00000b"]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "20260118T220000Z-00000b.log",
        "20260119T100000Z-00000c.log",
    ]


BIG_JOB = job_command("import sys\nfor i in range(80_000): sys.stdout.write(f'line {i:06d} ' + 'y' * 80 + chr(10))\n")


@pytest.mark.process
async def test_a_client_reading_slower_than_the_disk_gets_the_whole_log_and_its_end(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    # A 9 MB log, more than the kernel's socket buffers hold, read at a steady pace below the rate the service
    # reads its disk: the stream was cut (the client taken for one that stopped reading) after ~5 MB, no end.
    service = service_factory("--command", BIG_JOB, "--interval", "60")
    run = await finished_run(service)
    host, port = service.url.removeprefix("http://").split(":")

    def read_slowly() -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            path = f"/api/snapshot/runs/{run['runId']}/log/stream"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            got = b""
            while b"event: end\r\n" not in got[-100_000:] and (chunk := sock.recv(65536)):
                got += chunk
                time.sleep(0.004)  # not a wait for an event: the pace of a slow link (at most 16 MB/s)
            return got

    got = await asyncio.to_thread(read_slowly)
    assert b"event: end\r\n" in got, f"cut after {len(got)} bytes"
    assert b"line 079999 " in got
    assert "dropped" not in service.logs()


async def test_a_logs_folder_swapped_for_a_symlink_is_replaced_and_its_target_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    logs = RunLogs(tmp_path, clock)
    retention = Retention(history, logs, clock, keep_runs=1, keep_days=0)
    run_id, old_id = "20260120T100000Z-00000d", "20260119T100000Z-00000e"
    output = logs.open(run_id)
    first = f"before the swap {'.' * 150}"
    output(Pipe.OUT, first)
    await logs.flush()
    written = (tmp_path / "logs" / f"{run_id}.log").stat().st_size

    victim = tmp_path / "victim"
    victim.mkdir()
    for name in (f"{old_id}.log", "20200101T000000Z-0a0a0a.log"):  # named like a pruned run's log, an orphan
        (victim / name).write_text("theirs\n")
    (tmp_path / "logs").rename(tmp_path / "logs.moved")
    os.symlink(victim, tmp_path / "logs", target_is_directory=True)
    # Retention now: the old run goes, but nothing is removed through the link.
    history.record(_record(old_id, T0 - timedelta(days=1)), log_path=logs.relative_path(old_id))
    history.record(_record(run_id), log_path=logs.relative_path(run_id))
    retention.run_finished(RunFinished(_record(run_id)))
    await retention.wait()
    assert [run.run_id for run in history.page().runs] == [run_id]
    assert sorted(os.listdir(victim)) == ["20200101T000000Z-0a0a0a.log", f"{old_id}.log"]

    output(Pipe.OUT, "after the swap")
    logs.close(_record(run_id))
    await logs.stop()
    assert sorted(os.listdir(victim)) == ["20200101T000000Z-0a0a0a.log", f"{old_id}.log"], "nothing written there"
    assert all((victim / name).read_text() == "theirs\n" for name in os.listdir(victim))
    assert (tmp_path / "logs").is_dir() and not (tmp_path / "logs").is_symlink()
    content = (tmp_path / "logs" / f"{run_id}.log").read_bytes()
    lost, rest = content[:written], content[written:]
    assert lost.startswith(
        f"10:00:00.000 err [snapshot-orchestrator] the first {written} bytes of this log are lost".encode()
    )
    assert lost.endswith(b"\0\n") and lost.count(b"\n") == 1  # padded with a hole, read back as spaces
    assert rest == b"10:00:00.000 out after the swap\n"
    said = [r.getMessage() for r in caplog.records if r.name == "orchestrator.store.runlogs"]
    assert sum("was a symlink" in m for m in said) == 1, said
    assert sum("are lost" in m for m in said) == 1, said


async def test_a_log_removed_mid_run_keeps_its_offsets_without_taking_the_space_back(tmp_path: Path) -> None:
    """A full disk, and the operator removes the biggest file: the running job's log. Its next lines go to a
    fresh file that starts with one line as long as what was lost, so that readers' offsets hold; that line's
    padding is a hole, so the space just freed stays free."""
    logs = RunLogs(tmp_path, FakeClock(T0))
    run_id = "20260120T100000Z-00000f"
    output = logs.open(run_id)
    for i in range(8000):
        output(Pipe.OUT, f"line {i:05d} {'.' * 100}")
    await logs.flush()
    path = tmp_path / "logs" / f"{run_id}.log"
    written = path.stat().st_size
    assert written > 800_000
    path.unlink()
    output(Pipe.OUT, "after the removal")
    logs.close(_record(run_id))
    await logs.stop()
    info = path.stat()
    tail = b"10:00:00.000 out after the removal\n"
    assert info.st_size == written + len(tail)
    assert info.st_blocks * 512 < 64 * 1024, f"{info.st_blocks * 512} bytes on disk for a {written}-byte gap"
    served = read_range(path, 0, info.st_size)
    assert b"\0" not in served and served.endswith(b" \n" + tail)
    assert served.startswith(f"10:00:00.000 err [snapshot-orchestrator] the first {written} bytes".encode())
