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
import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from orchestrator.config import HttpSettings
from orchestrator.core.clock import Clock
from orchestrator.http.auth import AUTHENTICATED, BEARER
from orchestrator.http.clientaddr import client_of, parse_address
from orchestrator.http.errors import json_error
from orchestrator.http.fanout import SSE_RETRY_MS, Fanout, Fanouts, Frame, Pinger, Stream
from orchestrator.http.jobroutes import add_job_route, job_of
from orchestrator.http.streamclient import WRITE_BUFFER_CAP, Client, ClientNotReading
from orchestrator.http.streamlimits import Credential, Refusal, Room, StreamKind

log = logging.getLogger(__name__)

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

    # The handler itself, not a coroutine that awaits it: each frame a stream holds, ten thousand streams hold.
    add_job_route(app, "GET", "/events", functools.partial(serve_stream, settings=settings, kind=StreamKind.EVENTS))
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


Sender = Callable[["Client"], Awaitable[None]]
"""Writes a stream's events (with :func:`send_event`) until it returns; the stream then ends."""


async def serve_stream(
    request: web.Request, settings: HttpSettings, sender: Sender | None = None, kind: StreamKind = StreamKind.EVENTS
) -> web.StreamResponse:
    """A stream of ``kind`` whose events ``sender`` writes (a task of the stream's own), or (``None``) the
    request's job's status events, delivered by its fan-out: the current state on connect, then every change. Each
    event carries the whole state, so resuming is simple: a client whose ``Last-Event-ID`` is the latest version
    gets nothing until the next change; any other client gets the current state at once.

    Under the rules above: it is let in or refused by its kind's room (503 when full, 429 when its client holds
    enough), is pinged and closed at shutdown, and its client is dropped when it stops reading.

    One coroutine waits for the whole stream: each frame held while a stream is open is held ten thousand times
    over by ten thousand streams."""
    send = sender or request.app[FANOUTS].of(job_of(request).view)  # first: an unknown job is a 404, not a stream
    room = request.app[ROOMS][kind]
    address = client_of(request)
    seat = room.admit(address.key, credential_of(request), request.app[ROOM_CLOCK].now(), network=address.network)
    if isinstance(seat, Refusal):
        _unused(send)
        return json_error(seat.status, seat.message, {"Retry-After": str(seat.retry_after)})
    try:
        stream = Stream(send_timeout=settings.sse_send_timeout, headers={"Cache-Control": "no-cache"})
        await stream.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError
    except ConnectionResetError:
        # The client left before the response head could be written. Nothing can be sent; aiohttp's attempt
        # to send this placeholder fails the same way, which it takes quietly as a premature disconnection
        # (raised from here, it would log a traceback per vanished client).
        room.release(seat)
        _unused(send)
        return web.Response(status=503)
    except BaseException:  # a HEAD refused with 405, a cancel: the seat is given back all the same
        room.release(seat)
        _unused(send)
        raise
    client = Client(stream, transport, _peer(transport, address.address), request.writer, settings.sse_send_timeout)
    task = _open(request.app, kind, client, send, settings)
    try:
        # Until the stream is ended (by its sender, its fan-out, the pinger or a drop), as aiohttp-sse's
        # ``wait``; cancelled when aiohttp cancels the handler of a lost connection.
        await stream.life
    except asyncio.CancelledError:
        if (current := asyncio.current_task()) is not None and current.cancelling():
            raise
    finally:
        try:
            await _close(request.app, kind, client, send, task)
        finally:
            room.release(seat)
    return stream


def _unused(send: Sender | Fanout) -> None:
    if isinstance(send, Fanout) and not send.streams:
        send.close()  # made for this stream, which never opened: not kept


def _open(
    app: web.Application, kind: StreamKind, client: Client, sender: Sender | Fanout, settings: HttpSettings
) -> asyncio.Task[None] | None:
    """Count ``client``'s stream open and start its events: its fan-out's, or its sender task (returned)."""
    app[STREAMS][kind].add(client)
    app[PINGER].add(client)
    if isinstance(sender, Fanout):
        sender.join(client, client.response.last_event_id)
        return None
    return asyncio.create_task(_run_sender(client, settings, sender), name=f"sse-sender {client.peer}")


async def _close(
    app: web.Application, kind: StreamKind, client: Client, sender: Sender | Fanout, task: asyncio.Task[None] | None
) -> None:
    log.debug("event stream client %s closed", client.peer)
    app[STREAMS][kind].discard(client)
    app[PINGER].discard(client)
    client.end()
    if isinstance(sender, Fanout):
        sender.leave(client)
    elif task is not None:
        task.cancel()
        await asyncio.wait({task})  # not ``await task``: that would swallow a cancel of this handler
        if not task.cancelled():
            task.result()  # a bug in the sender surfaces here, once, instead of as an unretrieved task


def credential_of(request: web.Request) -> Credential:
    """What ``request`` proved to the guard: the bearer token, only the read cookie (or a stream ticket), or
    nothing."""
    if request.get(BEARER, False):
        return Credential.BEARER
    return Credential.COOKIE if request.get(AUTHENTICATED, False) else Credential.NONE


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
    client: Client, data: str | Frame, *, event: str = "", event_id: str | None = None, pace: float | None = None
) -> None:
    """Send one event, unless the client has left (``ConnectionResetError``) or stopped reading
    (:class:`ClientNotReading`): both end the stream when raised out of a :data:`Sender`. ``data`` is the event's
    data, or the whole event framed already (:func:`~orchestrator.http.fanout.frame`: one framing for every
    stream that sends it).

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
    if isinstance(data, str):
        await client.response.send(data, event=event, id=event_id, retry=SSE_RETRY_MS)
        return
    try:  # as aiohttp-sse's send writes its bytes
        async with asyncio.timeout(client.send_timeout):
            await client.response.write(data.plain)
    except ConnectionResetError:
        client.response.stop_streaming()
        raise
    except TimeoutError:
        client.drop()
        raise


def _peer(transport: asyncio.Transport, client: str) -> str:
    """``host:port`` of the connection; behind a trusted proxy, the client it forwards for first."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        connection = f"{peer[0]}:{peer[1]}"
        return connection if parse_address(str(peer[0])) == parse_address(client) else f"{client} (via {connection})"
    return str(peer)
