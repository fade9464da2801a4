"""The event stream: ``GET /api/snapshot/events``, one ``status`` event per change of the status document.

Each client has its own handler waiting on the hub's latest-value slot, so a slow client only ever delays
itself, and one that stops reading is dropped after ``sse_send_timeout`` instead of holding memory.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from orchestrator.hub import HubClosed
from orchestrator.service import Orchestrator

log = logging.getLogger(__name__)

STREAMS = web.AppKey("streams", set[EventSourceResponse])
SSE_RETRY_MS = 2000


def add_routes(app: web.Application, orchestrator_key: web.AppKey[Orchestrator]) -> None:
    app[STREAMS] = set()

    async def events(request: web.Request) -> web.StreamResponse:
        return await stream_events(request, request.app[orchestrator_key])

    app.router.add_get("/api/snapshot/events", events)
    app.on_shutdown.append(_close_streams)


def open_streams(app: web.Application) -> int:
    return len(app[STREAMS])


async def _close_streams(app: web.Application) -> None:
    # Without this, shutdown waits out its timeout on every open event stream.
    streams: set[EventSourceResponse] = app[STREAMS]
    for stream in tuple(streams):
        stream.stop_streaming()


async def stream_events(request: web.Request, orchestrator: Orchestrator) -> web.StreamResponse:
    """``text/event-stream`` of ``status`` events: the current state on connect, then every change.

    Each event carries the whole state, so resuming is simple: a client whose ``Last-Event-ID`` is the
    latest version gets nothing until the next change; any other client gets the current state at once.
    """
    hub = orchestrator.hub
    async with sse_response(
        request,
        ping_interval=orchestrator.settings.sse_ping_seconds,
        send_timeout=orchestrator.settings.sse_send_timeout,
        headers={"Cache-Control": "no-cache"},
    ) as stream:
        request.app[STREAMS].add(stream)
        try:
            version, document = hub.latest()
            if stream.last_event_id != str(version):
                await _send(stream, version, orchestrator.with_clock(document))
            while stream.is_connected():
                version, document = await hub.next_after(version)
                await _send(stream, version, orchestrator.with_clock(document))
        except (HubClosed, ConnectionResetError, TimeoutError):
            pass
        finally:
            request.app[STREAMS].discard(stream)
    return stream


async def _send(stream: EventSourceResponse, version: int, document: dict[str, Any]) -> None:
    await stream.send(json.dumps(document), event="status", id=str(version), retry=SSE_RETRY_MS)
