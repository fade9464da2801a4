"""One encoding of each event for every stream, and one ping timer for all of them.

What an open stream costs is what it holds while it waits, so a waiting stream holds no task, queue or timer of
its own:

- **Events, encoded once.** A job's status event is framed once per change (:func:`frame`): the bytes
  aiohttp-sse's ``send`` writes, with the chunk framing aiohttp's writer adds around them. A :class:`Fanout`
  follows the job's hub (one task, while any of its streams is open) and hands the same :class:`Frame` to each
  stream, one non-blocking write after the other; what a stream does with it (write it, skip it, drop its
  client) is the stream's rule (orchestrator/http/sse.py).
- **Pings, one timer.** The :class:`Pinger` writes one ping to every open stream each interval, from one timer
  that runs only while a stream is open (an idle service wakes for nothing). A stream's response
  (:class:`Stream`) is aiohttp-sse's, whose life is a future instead of a ping task of its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp_sse import EventSourceResponse

from orchestrator.http.ports import StatusView
from orchestrator.live.hub import HubClosed

log = logging.getLogger(__name__)

SSE_RETRY_MS = 2000
SEP = "\r\n"
"""aiohttp-sse's line separator."""
LINE_BREAKS = re.compile(r"\r\n|\r|\n")
PINGS_AT_ONCE = 1000
"""Streams pinged in one go: ten thousand pings are written in slices, so a request never waits behind them all."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One event's bytes, as written to a chunked response (HTTP/1.1) and to a plain one (HTTP/1.0)."""

    plain: bytes
    chunked: bytes

    @classmethod
    def of(cls, plain: bytes) -> Frame:
        return cls(plain, b"%x\r\n%b\r\n" % (len(plain), plain))


def frame(data: str, *, event: str | None = None, event_id: str | None = None, retry: int | None = None) -> Frame:
    """The event as aiohttp-sse's ``EventSourceResponse.send`` writes it (tests/http/test_fanout.py holds the
    two to the same bytes), encoded once."""
    lines = []
    if event_id is not None:
        if LINE_BREAKS.search(event_id) or "\0" in event_id:
            raise ValueError("id must not contain line separators or null characters")
        lines.append(f"id: {event_id}{SEP}")
    if event is not None:
        if LINE_BREAKS.search(event):
            raise ValueError("event must not contain line separators")
        lines.append(f"event: {event}{SEP}")
    lines.extend(f"data: {chunk}{SEP}" for chunk in LINE_BREAKS.split(data))
    if retry is not None:
        lines.append(f"retry: {retry}{SEP}")
    lines.append(SEP)
    return Frame.of("".join(lines).encode("utf-8"))


PING = Frame.of(f": ping{SEP}{SEP}".encode())
"""aiohttp-sse's ping."""


class Stream(EventSourceResponse):
    """aiohttp-sse's response, without a ping task of its own: its life is a future, which ``stop_streaming``
    cancels and ``wait`` awaits, as they do the ping task; the app's :class:`Pinger` pings it."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ("GET",))
        self._set_tcp_user_timeout(request)
        writer = await web.StreamResponse.prepare(self, request)
        # Read by aiohttp-sse's wait, stop_streaming and is_connected, which use nothing but done, cancel and await.
        self._ping_task = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
        self.enable_chunked_encoding()
        self.headers.clear()  # written: a stream would hold them as long as it is open
        return writer

    @property
    def life(self) -> asyncio.Future[None]:
        """Done when the stream ends: cancelled by ``stop_streaming``."""
        assert self._ping_task is not None, "not prepared"
        return self._ping_task


class Listener(Protocol):
    """An open stream, as the fan-out and the pinger see it."""

    version: int
    """The version of the job's document it has last been sent (``-1``: none)."""

    def deliver(self, frame: Frame, version: int = -1) -> None:
        """Write ``frame`` (of ``version``), or keep it for later, or end the stream."""

    def ping(self) -> None: ...

    def end(self) -> None:
        """End the stream (its handler returns)."""


class Pinger:
    """One ping timer for every open stream, running while any is open."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.streams: set[Listener] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, stream: Listener) -> None:
        self.streams.add(stream)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def discard(self, stream: Listener) -> None:
        self.streams.discard(stream)
        if not self.streams and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self.streams:
            self._ping(tuple(self.streams), 0)
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _ping(self, streams: tuple[Listener, ...], start: int) -> None:
        for stream in streams[start : start + PINGS_AT_ONCE]:
            if stream in self.streams:
                stream.ping()
        if start + PINGS_AT_ONCE < len(streams):
            asyncio.get_running_loop().call_soon(self._ping, streams, start + PINGS_AT_ONCE)


class Fanout:
    """A job's status events for every open stream of it: the hub followed by one task while any stream is
    open, each new version framed once and delivered to each stream that has not had it."""

    def __init__(self, view: StatusView, on_empty: Callable[[Fanout], None]) -> None:
        self.view = view
        self.streams: set[Listener] = set()
        self._on_empty = on_empty
        self._task: asyncio.Task[None] | None = None
        self._framed: tuple[str, Frame] | None = None
        """The last data framed and its frame: streams that join while it is fresh get the same bytes."""

    def join(self, stream: Listener, last_event_id: str | None) -> None:
        """Send ``stream`` the current state (unless ``last_event_id`` is its version), then every change."""
        version, document = self.view.latest()
        if last_event_id == str(version):
            stream.version = version
        else:
            stream.deliver(self._frame(version, document), version)
        self.streams.add(stream)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(version), name="event streams: a job's changes")
            self._task.add_done_callback(_said_if_failed)

    def leave(self, stream: Listener) -> None:
        self.streams.discard(stream)
        if not self.streams:
            self.close()

    def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._on_empty(self)

    async def _follow(self, version: int) -> None:
        try:
            while True:
                version, document = await self.view.next_after(version)
                framed = self._frame(version, document)
                for stream in tuple(self.streams):
                    if stream.version < version:
                        stream.deliver(framed, version)
        except HubClosed:
            pass  # shutting down, or the job was replaced: the streams end cleanly
        except Exception:
            self._end_all()  # a bug: said by the task's callback; the clients reconnect
            raise
        self._end_all()

    def _end_all(self) -> None:
        for stream in tuple(self.streams):
            stream.end()

    def _frame(self, version: int, document: dict[str, object]) -> Frame:
        data = self.view.status_event(version, document)
        if self._framed is None or self._framed[0] is not data:
            self._framed = (data, frame(data, event="status", event_id=str(version), retry=SSE_RETRY_MS))
        return self._framed[1]


class Fanouts:
    """The app's fan-outs, one per job's status view while any stream of it is open."""

    def __init__(self) -> None:
        self._by_view: dict[int, Fanout] = {}

    def of(self, view: StatusView) -> Fanout:
        fanout = self._by_view.get(id(view))
        if fanout is None or fanout.view is not view:
            fanout = Fanout(view, self._forget)
            self._by_view[id(view)] = fanout
        return fanout

    def all(self) -> Iterable[Fanout]:
        return tuple(self._by_view.values())

    def _forget(self, fanout: Fanout) -> None:
        if self._by_view.get(id(fanout.view)) is fanout:
            del self._by_view[id(fanout.view)]


def _said_if_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the event streams stopped following a job", exc_info=task.exception())
