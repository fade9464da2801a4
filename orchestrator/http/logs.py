"""A run's log over HTTP: ``GET /api/snapshot/runs/{runId}/log`` (plain text, ``Range`` or ``?offset=``) and
``GET /api/snapshot/runs/{runId}/log/stream`` (server-sent events: the log so far, then each line as the job
prints it, then ``end`` with the run's record); each job's runs' at ``/api/jobs/{job}/runs/...`` too (a run of
another job is not found there: orchestrator/http/jobroutes.py).

The running run's log is read through :class:`~orchestrator.store.runlogs.RunLog` (the file, then what still waits in
memory); any other run's from its file. Live lines wake the stream's sender in memory: no polling of the file.
The stream is an event stream like the status one (orchestrator/http/sse.py): it counts towards the log streams
allowed (apart from the event streams, so neither kind can crowd out the other), and a client that stops
reading is dropped; each sender holds one chunk of the log at a time.

What a client costs: each client has only an offset into the log. The job's lines go to the log whatever the
clients do; a client that is behind (its buffers full) is not written to until it takes what was sent, then
catches up from its offset (memory or file). Its kernel send buffer is capped (:data:`STREAM_SNDBUF`), so a
client that never reads costs one buffer's worth of events, not the whole log. A download (``GET /log``) whose
write cannot be handed over within ``HttpSettings.sse_send_timeout`` is cut (connection aborted), as a stream is;
a client that leaves mid-download is normal and logged at debug only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.http import sse
from orchestrator.http.clientaddr import client_of
from orchestrator.http.errors import ApiError
from orchestrator.http.jobroutes import JobRef, job_of, run_of_job
from orchestrator.http.ports import SERVED, Served
from orchestrator.http.streamclient import Client
from orchestrator.http.streamlimits import StreamKind
from orchestrator.store import HistoryNotOpened, StoreUnavailable
from orchestrator.store.runlogs import RunLog, log_size, read_range

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
"""Read and written at a time by ``GET /log``: a 50 MiB log never sits in memory whole."""
EVENT_BYTES = 16 * 1024
"""At most this much log text per ``log`` event (whole lines; a line is at most ~8 KiB), well under the
stream's write buffer cap."""
RANGE_SPEC = re.compile(r"^([0-9]{0,4000})-([0-9]{0,4000})$")
OFFSET = re.compile(r"^[0-9]{1,4000}$")
"""Any whole number in ASCII digits (``\\d`` and ``int`` also take other scripts' digits; HTTP does not), a huge
one past the end (416); Python parses up to 4300 digits."""
END_ID = "end"
"""The ``end`` event's id: a client reconnecting with it as ``Last-Event-ID`` has had the end, and gets 204 (an
EventSource stops reconnecting on 204)."""
STREAM_SNDBUF = 64 * 1024
"""A log stream's kernel send buffer (Linux doubles it). Left to autotuning it grows to megabytes, each one
read from the log, encoded and written for a client that may never read a byte of it."""


@dataclass(frozen=True, slots=True)
class LogView:
    """Where a run's log is read from: its live :class:`RunLog`, or its file alone (of ``file_size`` bytes)."""

    run_id: str
    path: Path
    live: RunLog | None
    file_size: int = 0
    record: Mapping[str, Any] | None = None

    @property
    def size(self) -> int:
        return self.live.size if self.live is not None else self.file_size

    async def read(self, offset: int, limit: int) -> bytes:
        if self.live is None:
            end = min(self.file_size, offset + limit)
            return await asyncio.to_thread(read_range, self.path, offset, end) if end > offset else b""
        memory, from_file = self.live.read(offset, limit)
        if from_file is None:
            return memory
        on_disk = await asyncio.to_thread(read_range, self.path, *from_file)
        if len(on_disk) < from_file[1] - from_file[0]:
            raise FileNotFoundError(f"{self.path} is shorter than written")
        return on_disk + memory


async def get_log(request: web.Request) -> web.StreamResponse:
    """``GET .../runs/{runId}/log``."""
    return await serve_log(request, request.app[SERVED])


async def follow_log(request: web.Request) -> web.StreamResponse:
    """``GET .../runs/{runId}/log/stream``."""
    return await stream_log(request, request.app[SERVED])


async def find_log(request: web.Request, service: Served) -> LogView:
    """The log of the run named in the path, or a refusal: 404 for no such run of the path's job, for a run
    without a log and for a log whose file is gone (each says which), 503 when the history cannot be read."""
    job = job_of(request)
    run_id = request.match_info["runId"]
    live = service.logs.get(run_id)
    if live is not None and _live_log_of(job, run_id, live):
        return LogView(run_id, live.path, live)
    try:
        stored = await asyncio.to_thread(service.history.get, run_id)
    except HistoryNotOpened as exc:
        raise ApiError(503, str(exc)) from None
    except StoreUnavailable as exc:
        raise ApiError(503, f"the run history cannot be read: {exc}") from None
    stored = run_of_job(stored, job, run_id)
    if live is not None:  # the history says whose it is: a run just starting, or just ended
        return LogView(run_id, live.path, live)
    path = service.logs.path_of(stored.log_path)
    if path is None:
        raise ApiError(404, f"Run {run_id} has no log (it ran before run logs were kept)")
    try:
        size = await asyncio.to_thread(log_size, path)  # a symlink swapped in is not followed: gone
    except OSError as exc:
        message = f"The log of run {run_id} is gone (removed, or never written: {exc.strerror or exc})"
        raise ApiError(404, message) from None
    return LogView(run_id, path, None, size, stored.document)


def _live_log_of(job: JobRef, run_id: str, live: RunLog) -> bool:
    """Whether a log kept live is ``job``'s as far as memory tells: its ended run's record names the job, or it
    is the job's running run. ``False`` sends the caller to the history, which knows every run's job."""
    if live.record is not None:
        return live.record.job == job.name
    running = job.view.running_steps()
    return running is not None and running.run_id == run_id


async def serve_log(request: web.Request, service: Served) -> web.StreamResponse:
    view = await find_log(request, service)
    size = view.size
    start, end, partial = requested_bytes(request, size)
    response = web.StreamResponse(status=206 if partial else 200)
    response.content_type = "text/plain"
    response.charset = "utf-8"
    response.content_length = end - start
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = "no-cache"  # the running run's log grows
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    try:
        chunk = await view.read(start, min(CHUNK_BYTES, end - start))  # before the head: a 404 is still possible
    except OSError as exc:
        raise ApiError(404, f"The log of run {view.run_id} is gone ({exc})") from None
    timeout = service.settings.http.sse_send_timeout
    try:
        await response.prepare(request)
        at = start
        while chunk and request.method != "HEAD":
            async with asyncio.timeout(timeout):  # a client that stops reading would hold the fd for ever
                await response.write(chunk)
            at += len(chunk)
            if at >= end:
                break
            try:
                chunk = await view.read(at, min(CHUNK_BYTES, end - at))
            except OSError:
                chunk = b""
            if not chunk and request.transport is not None:
                request.transport.close()  # removed under us: the length announced cannot be kept; say so now
                return response
        async with asyncio.timeout(timeout):
            await response.write_eof()
    except TimeoutError:
        log.info(
            "log download of run %s by %s cut: a write could not be sent within %g s",
            view.run_id,
            _peer(request),
            timeout,
        )
        if request.transport is not None:
            _reset(request.transport)
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError too: the client left, as clients do
        log.debug("log download of run %s by %s ended early: the client left", view.run_id, _peer(request))
    except asyncio.CancelledError:
        # How aiohttp usually tells a handler its client left (handler_cancellation); or the service stops.
        log.debug("log download of run %s by %s ended early: cancelled", view.run_id, _peer(request))
        raise
    return response


def _reset(transport: asyncio.Transport) -> None:
    """Close with a reset: a graceful close would queue its FIN behind the unsent bytes, which the client never
    takes, so the kernel would hold them and the client would never learn the download is over."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _peer(request: web.Request) -> str:
    return client_of(request).address


def requested_bytes(request: web.Request, size: int) -> tuple[int, int, bool]:
    """(start, end, partial) of the bytes asked for with ``?offset=`` or ``Range``; a refusal if the offset is
    bad (400) or they start beyond the end (416). A ``Range`` that is not one byte range (another unit, several
    ranges, a reversed one, garbage) is ignored, as HTTP allows: the answer is the whole log."""
    offset_text = request.query.get("offset")
    if offset_text is not None:  # it wins over a Range
        offset = parse_offset(offset_text)
        if offset > size:
            raise _unsatisfiable(size, f"offset {offset} is beyond the end of the log ({size} bytes)")
        return offset, size, False
    unit, _, spec = request.headers.get("Range", "").partition("=")
    match = RANGE_SPEC.match(spec.strip()) if unit.strip().lower() == "bytes" else None
    if match is None or match.groups() == ("", "") or (all(match.groups()) and int(match[2]) < int(match[1])):
        return 0, size, False
    first, last = match.groups()
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size, f"the last {suffix} bytes of a log of {size} bytes")
        return size - min(suffix, size), size, True
    start = int(first)
    if start >= size:
        raise _unsatisfiable(size, f"Range starts at byte {start}, beyond the end of the log ({size} bytes)")
    return start, min(size, int(last) + 1) if last else size, True


def parse_offset(text: str) -> int:
    if not OFFSET.match(text):
        raise ApiError(400, f"offset must be a byte offset (a whole number, 0 or more), got {text[:40]!r}")
    return int(text)


def _unsatisfiable(size: int, message: str) -> ApiError:
    return ApiError(416, message, {"Content-Range": f"bytes */{size}"})


async def stream_log(request: web.Request, service: Served) -> web.StreamResponse:
    view = await find_log(request, service)
    offset = 0
    last_seen = request.headers.get("Last-Event-ID", "")
    if last_seen == END_ID:
        return web.Response(status=204)  # it has had the end: a reconnecting EventSource stops here
    if OFFSET.match(last_seen):
        offset = int(last_seen)  # a browser resuming: each event's id is the offset after it
    elif "offset" in request.query:
        offset = parse_offset(request.query["offset"])
    if offset > view.size:
        raise _unsatisfiable(view.size, f"offset {offset} is beyond the end of the log ({view.size} bytes)")

    async def send(client: Client) -> None:
        sock = client.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # gone already: the first event finds out
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        await _follow(client, view, offset, service.settings.http.sse_send_timeout)

    return await sse.serve_stream(request, service.settings.http, send, StreamKind.LOG)


async def _follow(client: Client, view: LogView, offset: int, pace: float) -> None:
    """``log`` events from ``offset`` to the end of the log as it grows, then ``end`` with the run's record;
    at the pace of the client (a backlog of megabytes is sent as fast as it reads, not dropped for it)."""
    while True:
        if offset < view.size:
            try:
                data = await view.read(offset, EVENT_BYTES)
            except OSError:
                return  # the file went away under us: the stream just ends
            cut = data.rfind(b"\n") + 1 or len(data)  # whole lines; a last line cut by a crash as it is
            text = data[:cut].decode("utf-8", errors="replace")
            document = {"offset": offset, "text": text}
            await sse.send_event(client, json.dumps(document), event="log", event_id=str(offset + cut), pace=pace)
            offset += cut
        elif view.live is not None and not view.live.ended:
            await view.live.wait_beyond(offset)
        else:
            break
    record = view.live.record.to_json() if view.live is not None and view.live.record else view.record
    await sse.send_event(client, json.dumps(record), event="end", event_id=END_ID, pace=pace)
