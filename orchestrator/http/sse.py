"""The event stream: ``GET /api/snapshot/events`` (the default job) and ``GET /api/jobs/{job}/events``, one
``status`` event per change of the job's status document; ``GET /api/events`` (orchestrator/http/allevents.py)
is every job's in one stream, under the same rules.

A job's streams share one follower of its hub (orchestrator/http/fanout.py): each change is encoded once and
the same bytes are written to every stream, one non-blocking write after the other, so a slow client never
delays another and holds no task while it waits. A client whose connection cannot take an event at once (the
server's buffer for it above asyncio's high-water mark) gets a task of its own until it has taken it, and is
written to again after: the latest state it missed meanwhile, then every change. The drop rule, explicit:

- **Buffer cap.** Before each event, a client with more than ``WRITE_BUFFER_CAP`` bytes still waiting in the
  server's write buffer is dropped at once. Those bytes wait in user space only once the kernel's socket
  buffer (up to megabytes) is full too, so the client is far behind: it stopped reading. Its connection is
  aborted (RST), which frees both buffers; a browser reconnects after ``retry`` and gets the latest state.
- **Send timeout.** A write that cannot be handed over within ``HttpSettings.sse_send_timeout`` (an event larger
  than the cap's headroom, or a ping on a quiet stream) drops the client too; aiohttp-sse aborts it.
  aiohttp-sse also sets the socket's ``TCP_USER_TIMEOUT`` to the send timeout, so on Linux the kernel aborts
  a connection whose data (or whose closed window) has gone unacknowledged that long. That drop is the
  kernel's: the service only sees the connection lost, and logs it at debug like any client that left.
- **Gone clients.** The handler waits on the stream's life, not on the hub: it ends when the stream is ended
  (its client dropped or gone, its job's hub closed), and when the app's one ping timer finds its connection
  closed (a client that vanished is found by its next ping even where aiohttp does not cancel handlers of lost
  connections).

Each drop the service decides is logged once, at info, with the client's address.

Who may open a stream (orchestrator/http/streamlimits.py): event streams and log streams are counted apart, each
against a total (503 beyond), with a share of it kept for requests that carry the token, and at most
``HttpSettings.streams_per_client`` anonymous ones per client address, and as many with the read cookie (429
beyond). The client address is the one orchestrator/http/clientaddr.py works out (behind a trusted proxy, the
forwarded one); what the request carried, the guard has said: ``guard.BEARER`` for the token itself,
``guard.AUTHENTICATED`` alone for the read cookie or a stream ticket (:func:`credential_of`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp_sse import EventSourceResponse

from orchestrator.config import HttpSettings
from orchestrator.core.clock import Clock
from orchestrator.http.auth import AUTHENTICATED, BEARER
from orchestrator.http.clientaddr import client_of, parse_address
from orchestrator.http.errors import json_error
from orchestrator.http.fanout import PING, SSE_RETRY_MS, Fanout, Fanouts, Frame, Pinger, Stream
from orchestrator.http.jobroutes import add_job_route, job_of
from orchestrator.http.ports import StatusView
from orchestrator.http.streamlimits import Credential, Refusal, Room, Seat, StreamKind

log = logging.getLogger(__name__)

WRITE_BUFFER_CAP = 32 * 1024
"""Bytes a client may leave unsent in the server's write buffer before it is dropped. Half of asyncio's
default high-water mark (64 KiB): a status event (~1-2 KiB) sent below the cap never reaches the mark, so
the write never waits for the client and the cap, not the send timeout, decides. The kernel's socket buffer
comes first, so a reading client on a slow link has that much more headroom."""


class ClientNotReading(ConnectionError):
    """An event stream client left more than the cap unsent: it stopped reading."""

    def __init__(self, peer: str, buffered: int) -> None:
        super().__init__(f"event stream client {peer} dropped: {buffered} bytes unsent (cap {WRITE_BUFFER_CAP})")
        self.buffered = buffered


class Client:
    """One open event stream: the response, its connection, who is on the other end; and what the fan-out and
    the pinger write to it (:meth:`deliver`, :meth:`ping`)."""

    __slots__ = (
        "_draining",
        "_missed",
        "chunked",
        "peer",
        "response",
        "send_timeout",
        "transport",
        "version",
        "writer",
    )

    def __init__(
        self,
        response: EventSourceResponse,
        transport: asyncio.Transport,
        peer: str,
        writer: AbstractStreamWriter,
        send_timeout: float,
    ) -> None:
        self.response = response
        self.transport = transport
        self.peer = peer
        self.writer = writer
        """The response's writer: its ``drain`` waits for the client to take what was sent (see ``pace``)."""
        self.chunked = bool(getattr(writer, "chunked", True))
        self.send_timeout = send_timeout
        self.version = -1
        self._draining: asyncio.Task[None] | None = None
        self._missed: tuple[Frame, int] | None = None

    def buffered(self) -> int:
        """Bytes written for this client that are still in the server's user-space write buffer."""
        return 0 if self.transport.is_closing() else self.transport.get_write_buffer_size()

    def deliver(self, frame: Frame, version: int = -1) -> None:
        """Write ``frame`` (version ``version`` of the job's document) now; keep it for later while the
        connection takes what was written before; or drop a client that stopped reading."""
        if self.transport.is_closing():
            self.end()
        elif self._draining is not None:
            self._missed = (frame, version)  # the latest only: each event is a whole state
        elif (buffered := self.buffered()) > WRITE_BUFFER_CAP:
            log.info("%s; it stopped reading", ClientNotReading(self.peer, buffered))
            self.drop()
        else:
            self.version = max(self.version, version)
            self._write(frame)

    def ping(self) -> None:
        if self.transport.is_closing():
            self.end()  # the client vanished: found by its ping
        elif self._draining is None:
            self._write(PING)

    def end(self) -> None:
        """End the stream: its handler returns."""
        self.response.stop_streaming()
        draining, self._draining = self._draining, None
        if draining is not None:
            draining.cancel()

    def drop(self) -> None:
        self.transport.abort()  # a graceful close would wait for the client to read the buffer
        self.end()

    def _write(self, frame: Frame) -> None:
        self.transport.write(frame.chunked if self.chunked else frame.plain)
        if self.transport.get_write_buffer_size() > self.transport.get_write_buffer_limits()[1]:
            self._draining = asyncio.create_task(self._drain(), name=f"sse-drain {self.peer}")

    async def _drain(self) -> None:
        """Wait (at most the send timeout) for the client to take what was written, then send it the latest
        state it missed meanwhile."""
        try:
            async with asyncio.timeout(self.send_timeout):
                await self.writer.drain()
        except TimeoutError:
            log.info(
                "event stream client %s dropped: an event could not be sent within %g s", self.peer, self.send_timeout
            )
            self._draining = None
            self.drop()
            return
        except ConnectionError:
            self._draining = None
            self.end()
            return
        self._draining = None
        missed, self._missed = self._missed, None
        if missed is not None:
            self.deliver(*missed)


STREAMS = web.AppKey("streams", dict[StreamKind, set[Client]])
PINGER = web.AppKey("stream_pinger", Pinger)
FANOUTS = web.AppKey("stream_fanouts", Fanouts)
ROOMS = web.AppKey("stream_rooms", dict[StreamKind, Room])
ROOM_CLOCK = web.AppKey("stream_room_clock", Clock)
"""The clock the rooms' log spells are timed by (the service's: a fake one in tests)."""


def add_routes(app: web.Application, settings: HttpSettings, clock: Clock) -> None:
    """The event stream's routes (each job's status view), and the rooms of both kinds of stream; ``clock``
    times the rooms' log spells."""
    limits = {StreamKind.EVENTS: settings.max_streams(), StreamKind.LOG: settings.max_log_streams()}
    streams: dict[StreamKind, set[Client]] = {kind: set() for kind in StreamKind}
    app[STREAMS] = streams
    rooms: dict[StreamKind, Room] = {
        kind: Room(kind, limit=limit, per_client=settings.streams_per_client, has_token=settings.token is not None)
        for kind, limit in limits.items()
    }
    app[ROOMS] = rooms
    app[ROOM_CLOCK] = clock
    app[PINGER] = Pinger(settings.sse_ping_seconds)
    app[FANOUTS] = Fanouts()

    async def events(request: web.Request) -> web.StreamResponse:
        return await stream_events(request, job_of(request).view, settings)

    add_job_route(app, "GET", "/events", events)
    app.on_shutdown.append(_close_streams)


def open_streams(app: web.Application, kind: StreamKind = StreamKind.EVENTS) -> int:
    """Streams of ``kind`` let in and not yet ended (those still writing their head included)."""
    return app[ROOMS][kind].open


def clients(app: web.Application, kind: StreamKind = StreamKind.EVENTS) -> tuple[Client, ...]:
    """The open streams of ``kind`` (for tests and benchmarks that watch the server's side of a connection)."""
    return tuple(app[STREAMS][kind])


async def _close_streams(app: web.Application) -> None:
    # Without this, shutdown waits out its timeout on every open event stream.
    for streams in app[STREAMS].values():
        for client in tuple(streams):
            client.end()


async def stream_events(request: web.Request, view: StatusView, settings: HttpSettings) -> web.StreamResponse:
    """``text/event-stream`` of ``status`` events: the current state on connect, then every change.

    Each event carries the whole state, so resuming is simple: a client whose ``Last-Event-ID`` is the
    latest version gets nothing until the next change; any other client gets the current state at once.
    """
    return await serve_stream(request, settings, request.app[FANOUTS].of(view), StreamKind.EVENTS)


Sender = Callable[["Client"], Awaitable[None]]
"""Writes a stream's events (with :func:`send_event`) until it returns; the stream then ends."""


async def serve_stream(
    request: web.Request, settings: HttpSettings, sender: Sender | Fanout, kind: StreamKind
) -> web.StreamResponse:
    """A stream of ``kind`` whose events ``sender`` writes (a task of the stream's own), or a job's fan-out
    delivers, under the rules above: it is let in or refused by its kind's room (503 when full, 429 when its
    client holds enough), is pinged and closed at shutdown, and its client is dropped when it stops reading."""
    room = request.app[ROOMS][kind]
    client = client_of(request)
    seat = room.admit(client.key, credential_of(request), request.app[ROOM_CLOCK].now(), network=client.network)
    if isinstance(seat, Refusal):
        return json_error(seat.status, seat.message, {"Retry-After": str(seat.retry_after)})
    try:
        return await _stream(request, settings, sender, seat)
    except ConnectionResetError:
        # The client left before the response head could be written. Nothing can be sent; aiohttp's attempt
        # to send this placeholder fails the same way, which it takes quietly as a premature disconnection
        # (raised from here, it would log a traceback per vanished client).
        return web.Response(status=503)
    finally:
        room.release(seat)


def credential_of(request: web.Request) -> Credential:
    """What ``request`` proved to the guard: the bearer token, only the read cookie (or a stream ticket), or
    nothing."""
    if request.get(BEARER, False):
        return Credential.BEARER
    return Credential.COOKIE if request.get(AUTHENTICATED, False) else Credential.NONE


async def _stream(
    request: web.Request, settings: HttpSettings, send: Sender | Fanout, seat: Seat
) -> web.StreamResponse:
    stream = Stream(send_timeout=settings.sse_send_timeout, headers={"Cache-Control": "no-cache"})
    await stream.prepare(request)
    transport = request.transport
    if transport is None:
        raise ConnectionResetError
    peer = _peer(transport, client_of(request).address)
    client = Client(stream, transport, peer, request.writer, settings.sse_send_timeout)
    streams, pinger = request.app[STREAMS][seat.kind], request.app[PINGER]
    streams.add(client)
    pinger.add(client)
    sender = None
    try:
        if isinstance(send, Fanout):
            send.join(client, stream.last_event_id)
        else:
            sender = asyncio.create_task(_run_sender(client, settings, send), name=f"sse-sender {client.peer}")
        # Returns once the stream is ended (by its sender, its fan-out, the pinger or a drop). Cancelled when
        # aiohttp cancels the handler of a lost connection.
        await stream.wait()
    finally:
        log.debug("event stream client %s closed", client.peer)
        streams.discard(client)
        pinger.discard(client)
        client.end()
        if isinstance(send, Fanout):
            send.leave(client)
        elif sender is not None:
            sender.cancel()
            await asyncio.wait({sender})  # not ``await sender``: that would swallow a cancel of this handler
            if not sender.cancelled():
                sender.result()  # a bug in the sender surfaces here, once, instead of as an unretrieved task
    return stream


async def _run_sender(client: Client, settings: HttpSettings, send: Sender) -> None:
    """Run ``send`` for ``client``; a client it finds gone or not reading ends the stream (logged once)."""
    stream = client.response
    try:
        await send(client)
    except ClientNotReading as exc:
        log.info("%s; it stopped reading", exc)
        client.transport.abort()  # a graceful close would wait for the client to read the buffer
    except TimeoutError:
        # aiohttp-sse has aborted the connection already.
        log.info(
            "event stream client %s dropped: an event could not be sent within %g s",
            client.peer,
            settings.sse_send_timeout,
        )
    except ConnectionResetError:
        pass  # the client left; nothing to tell anyone
    finally:
        stream.stop_streaming()


async def send_event(
    client: Client, data: str, *, event: str, event_id: str | None = None, pace: float | None = None
) -> None:
    """Send one event, unless the client has left (``ConnectionResetError``) or stopped reading
    (:class:`ClientNotReading`): both end the stream when raised out of a :data:`Sender`.

    ``pace``: for a sender with a backlog (a log read from its start), whose events come as fast as the disk
    gives them. A full buffer then means only that the client reads slower than the disk, so it first waits up
    to ``pace`` seconds for the client to take what was sent before; only a client that takes nothing for that
    long is dropped."""
    if client.transport.is_closing():
        raise ConnectionResetError
    if pace is not None:
        # Paused above half the cap, resumed below a quarter of that: the writer's drain waits for the resume.
        client.transport.set_write_buffer_limits(high=WRITE_BUFFER_CAP // 2)
        try:
            async with asyncio.timeout(pace):
                await client.writer.drain()
        except TimeoutError:
            raise ClientNotReading(client.peer, client.buffered()) from None
    buffered = client.buffered()
    if buffered > WRITE_BUFFER_CAP:
        raise ClientNotReading(client.peer, buffered)
    await client.response.send(data, event=event, id=event_id, retry=SSE_RETRY_MS)


def _peer(transport: asyncio.Transport, client: str) -> str:
    """``host:port`` of the connection; behind a trusted proxy, the client it forwards for first."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        connection = f"{peer[0]}:{peer[1]}"
        return connection if parse_address(str(peer[0])) == parse_address(client) else f"{client} (via {connection})"
    return str(peer)
