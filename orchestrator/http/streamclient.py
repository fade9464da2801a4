"""One open event stream as the server holds it (:class:`Client`), and what is written to it: events the fan-out
delivers, pings, and the drop of a client that stopped reading (the rules: orchestrator/http/sse.py)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp.abc import AbstractStreamWriter
from aiohttp_sse import EventSourceResponse

from orchestrator.http.fanout import PING, Frame

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
        transport = self.transport
        # The common case first, in as few calls as can be: it runs once per stream for each change.
        if self._draining is None and not transport.is_closing():
            buffered = transport.get_write_buffer_size()
            if buffered <= WRITE_BUFFER_CAP:
                self.version = max(self.version, version)
                self._write(frame)
            else:
                log.info("%s; it stopped reading", ClientNotReading(self.peer, buffered))
                self.drop()
        elif self._draining is not None:
            self._missed = (frame, version)  # the latest only: each event is a whole state
        else:
            self.end()

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
        transport = self.transport
        transport.write(frame.chunked if self.chunked else frame.plain)
        # Most writes leave nothing behind: the limits are asked for only when some is.
        if (left := transport.get_write_buffer_size()) and left > transport.get_write_buffer_limits()[1]:
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
