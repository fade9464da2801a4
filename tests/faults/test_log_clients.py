"""Fault: run log clients that misbehave, and odd requests for a log.

- A live log stream client that never reads costs the service one (capped) socket buffer of events, not the
  log: the job and everyone else go on at full speed (a real service process; the server's side of each
  connection is read from ``/proc/net/tcp``).
- A download (``GET /log``) whose client stops reading is cut after the send timeout (the app in-process on a
  real socket, to set a short send timeout); one whose client leaves mid-way is not an error (a real process).
- ``Range`` / ``?offset=`` take ASCII digits only, and huge numbers as HTTP says (416 past the end, an end
  clamped to the size).
- The stream's ``end`` has an id; a reconnect that had it gets 204 (an EventSource stops).
- A job that cannot start says why in its log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.http.app import create_app
from orchestrator.job.protocol import Pipe, RunContext
from orchestrator.job.subprocessjob import SubprocessJob
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.runlogs import RunLogs
from tests.fakes import T0, ScriptedJob, Services
from tests.faults.test_sse_load import SLOW_RCVBUF, connect_raw, read_until, reset
from tests.support import ServiceProcess, job_command, next_status, sse_stream

RUN_ID = "20260120T090000Z-0000aa"
LINE = b"09:00:00.000 out " + b"y" * 182 + b"\n"  # 200 bytes
GATED_FLOOD = job_command(
    "import sys\n"
    "open(sys.argv[1]).readline()\n"  # waits for the test's go: the clients are connected by then
    "w = sys.stdout.buffer\n"
    "for i in range(30_000): w.write(b'y' * 200 + b'\\n')\n"
)
"""About 6.5 MB of log, more than the kernel's socket buffers take when left to autotune (~3 MB a client)."""


# ------------------------------------------------------------------------------------------------ helpers
def server_send_queues(port: int, client_ports: set[int]) -> dict[int, int]:
    """Bytes waiting in the kernel's send queue of the service's side of each client connection (by the
    client's port): what the service has written that the client has not taken."""
    queues: dict[int, int] = {}
    with open("/proc/net/tcp") as table:
        for row in list(table)[1:]:
            fields = row.split()
            local, remote, queue = fields[1], fields[2], fields[4]
            remote_port = int(remote.split(":")[1], 16)
            if int(local.split(":")[1], 16) == port and remote_port in client_ports:
                queues[remote_port] = int(queue.split(":")[0], 16)
    return queues


def seed_finished_log(data_dir: Path, lines: int) -> None:
    """One finished run in the history of ``data_dir``, with a log of ``lines`` lines."""
    (data_dir / "logs").mkdir(parents=True)
    (data_dir / "logs" / f"{RUN_ID}.log").write_bytes(LINE * lines)
    run = RunRecord(RUN_ID, (Trigger(Source.HTTP, T0),), T0, status=RunStatus.COMPLETED, finished_at=T0)
    SqliteHistory(data_dir / HISTORY_FILE_NAME).record(run, log_path=f"logs/{RUN_ID}.log")


@asynccontextmanager
async def serving_a_finished_log(services: Services, lines: int, **settings: object) -> AsyncIterator[TestServer]:
    """The app on a real socket, whose history holds one finished run with a log of ``lines`` lines."""
    seed_finished_log(services.root / "data", lines)
    orchestrator = services.build(clock=FakeClock(T0), job=ScriptedJob(), **settings)
    server = TestServer(create_app(orchestrator))
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def raw_request(port: int, path: str, *headers: str, rcvbuf: int | None = None) -> socket.socket:
    sock = await connect_raw(port, rcvbuf=rcvbuf)
    head = "".join(f"{header}\r\n" for header in headers)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
    return sock


def wait_for_abort(sock: socket.socket, timeout: float) -> bool:
    """Whether the server resets ``sock`` within ``timeout``, read nothing meanwhile (for a worker thread)."""
    poller = select.poll()
    poller.register(sock, select.POLLERR | select.POLLHUP)  # not POLLIN: the unread data must stay unread
    return bool(poller.poll(timeout * 1000))


class Told(logging.Handler):
    """Wakes the test when the service logs a record ``wanted`` accepts (no polling of the log)."""

    def __init__(self, wanted: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__(logging.DEBUG)
        self.wanted = wanted
        self.records: list[logging.LogRecord] = []
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.wanted(record):
            self.event.set()


@pytest.fixture
def told() -> Iterator[Callable[[Callable[[logging.LogRecord], bool]], Told]]:
    handlers: list[Told] = []
    loggers = [logging.getLogger(name) for name in ("orchestrator.http.logs", "aiohttp.server", "aiohttp.web")]
    levels = [logger.level for logger in loggers]

    def make(wanted: Callable[[logging.LogRecord], bool]) -> Told:
        handler = Told(wanted)
        handlers.append(handler)
        for logger in loggers:
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
        return handler

    yield make
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
        for handler in handlers:
            logger.removeHandler(handler)


# --------------------------------------------------------------------------------------------------- tests
@pytest.mark.process
async def test_a_log_stream_client_that_never_reads_costs_one_capped_buffer_not_the_log(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    # Before: each such client took ~3 MB of the log (read, encoded, written into its autotuned socket buffer)
    # on the service's loop: 100 of them made a 2.7 s job take 7.3 s and /health wait 0.85 s.
    gate = tmp_path / "go.fifo"
    os.mkfifo(gate)
    gate_fd = os.open(gate, os.O_RDWR | os.O_NONBLOCK)  # the job's open never blocks; it waits for a line
    service = service_factory("--command", f"{GATED_FLOOD} {gate}", "--interval", "60")
    hogs: list[socket.socket] = []
    try:
        async with aiohttp.ClientSession() as session:
            status_events = sse_stream(session, service.url + "/api/snapshot/events")
            run_id = (await next_status(status_events, lambda d: d["running"]))["currentRun"]["runId"]
            path = f"/api/snapshot/runs/{run_id}/log/stream"
            for _ in range(3):
                hog = await raw_request(service.port, path, rcvbuf=SLOW_RCVBUF)
                await read_until(hog, b"\r\n\r\n")  # the stream is open; from here on it never reads
                hogs.append(hog)
            reader = sse_stream(session, service.url + path)
            os.write(gate_fd, b"go\n")
            got = 0
            async with asyncio.timeout(30):
                async for event in reader:
                    if event.event == "end":
                        break
                    got += len(event.json()["text"])
            assert got == 30_000 * (len("00:00:00.000 out ") + 201), "the reading client got the whole log"
            ports = {hog.getsockname()[1] for hog in hogs}
            queues = server_send_queues(service.port, ports)
            assert set(queues) == ports, "the clients that never read are still connected (not yet timed out)"
            assert max(queues.values()) < 1024 * 1024, f"bytes held for clients that never read: {queues}"
    finally:
        for hog in hogs:
            reset(hog)
        os.close(gate_fd)


async def test_a_download_whose_client_stops_reading_is_cut_after_the_send_timeout(
    told: Callable[[Callable[[logging.LogRecord], bool]], Told], services: Services
) -> None:
    # Before: the write waited for the client for ever; 200 such downloads held 200 fds for 70 s and more.
    seen = told(lambda r: "cut" in r.getMessage())
    async with serving_a_finished_log(services, 40_000, sse_send_timeout=0.5) as server:
        assert server.port is not None
        sock = await raw_request(server.port, f"/api/snapshot/runs/{RUN_ID}/log", rcvbuf=SLOW_RCVBUF)
        try:
            assert await asyncio.to_thread(wait_for_abort, sock, 10), "the download was never cut"
        finally:
            sock.close()
        async with asyncio.timeout(10):
            await seen.event.wait()
    messages = [r.getMessage() for r in seen.records if r.levelno >= logging.INFO]
    assert len(messages) == 1 and f"log download of run {RUN_ID} by 127.0.0.1 cut" in messages[0], messages


@pytest.mark.process
async def test_a_client_that_leaves_mid_download_is_not_an_error(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    # Before: `curl .../log | head -c 1000` logged a 30-line ERROR traceback (ClientConnectionResetError).
    # A real service process: how aiohttp tells a handler of a lost connection depends on how it is run.
    seed_finished_log(tmp_path / "data", 40_000)
    service = service_factory("--command", "true", "--interval", "60", "--log-level", "debug")
    sock = await raw_request(service.port, f"/api/snapshot/runs/{RUN_ID}/log", rcvbuf=SLOW_RCVBUF)
    await read_until(sock, b"\r\n\r\n", LINE * 5)  # taken 1000 bytes, like `head -c 1000`
    reset(sock)
    # aiohttp tells the handler either way: a failed write, or a cancel; both are one debug line.
    await asyncio.to_thread(service.wait_for_log, f"log download of run {RUN_ID} by 127.0.0.1 ended early: ")
    assert "Traceback" not in service.logs() and " ERROR " not in service.logs(), service.logs()


@pytest.mark.parametrize(
    ("headers", "query", "status", "content_range"),
    [
        (("Range: bytes=99999999999999999999-",), "", 416, "bytes */2000"),  # was 200, the whole log
        (("Range: bytes=0-99999999999999999999",), "", 206, "bytes 0-1999/2000"),  # was 200
        (("Range: bytes=1999-99999999999999999999",), "", 206, "bytes 1999-1999/2000"),
        (("Range: bytes=１-２",), "", 200, None),  # noqa: RUF001 (full-width digits: ignored; was 206)
        ((), "?offset=%EF%BC%93", 400, None),  # a full-width 3: was 200 from byte 3
    ],
)
async def test_range_and_offset_take_ascii_digits_and_huge_numbers_as_http_says(
    headers: tuple[str, ...], query: str, status: int, content_range: str | None, services: Services
) -> None:
    async with serving_a_finished_log(services, 10) as server:
        assert server.port is not None
        sock = await raw_request(server.port, f"/api/snapshot/runs/{RUN_ID}/log{query}", *headers)
        try:
            head = (await read_until(sock, b"\r\n\r\n")).split(b"\r\n\r\n")[0].decode()
        finally:
            sock.close()
    assert head.startswith(f"HTTP/1.1 {status} "), head
    if content_range is not None:
        assert f"Content-Range: {content_range}" in head.split("\r\n"), head


async def test_the_end_event_has_an_id_and_a_reconnect_that_had_it_gets_204(services: Services) -> None:
    # Before: `end` had no id and `retry: 2000` came with it: an EventSource reconnected every 2 s for ever.
    async with serving_a_finished_log(services, 10) as server, aiohttp.ClientSession() as session:
        url = str(server.make_url(f"/api/snapshot/runs/{RUN_ID}/log/stream"))
        async with asyncio.timeout(10):
            events = [event async for event in sse_stream(session, url)]
        assert [(e.event, e.id) for e in events] == [("log", "2000"), ("end", "end")]
        async with session.get(url, headers={"Last-Event-ID": "end"}) as response:
            assert (response.status, await response.read()) == (204, b"")
        async with session.get(url, headers={"Last-Event-ID": "３"}) as response:  # noqa: RUF001 (not an offset)
            assert response.status == 200
            assert b"event: log\r\n" in await response.content.readuntil(b"\r\n\r\n")


@pytest.mark.process
async def test_a_job_that_cannot_start_says_why_in_its_log(tmp_path: Path) -> None:
    # Before: the log of a job that never ran was empty; only the service's own log said why.
    not_a_program = tmp_path / "job"
    not_a_program.write_bytes(b"\x7fELF garbage")
    not_a_program.chmod(0o755)
    logs = RunLogs(tmp_path, FakeClock(T0))
    output = logs.open(RUN_ID)
    ctx = RunContext(RUN_ID, Source.HTTP, "", tmp_path / "progress.json", output)
    result = await SubprocessJob([str(not_a_program)]).run(ctx, lambda parsed: None)
    assert result.status is RunStatus.ERROR
    logs.close(RunRecord(RUN_ID, (Trigger(Source.HTTP, T0),), T0, status=RunStatus.ERROR, finished_at=T0))
    await logs.stop()
    assert (tmp_path / "logs" / f"{RUN_ID}.log").read_text() == (
        f"10:00:00.000 {Pipe.ERR} [snapshot-orchestrator] cannot start job {not_a_program}: "
        f"[Errno 8] Exec format error: '{not_a_program}'\n"
    )


assert sys.platform.startswith("linux"), "/proc/net/tcp and POLLHUP on a reset are Linux's"
