"""The HTTP surface: routes, the SSE stream, the static page, and the service's lifecycle in the app."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from orchestrator import __version__
from orchestrator.events import Source, clean_reason
from orchestrator.hub import HubClosed
from orchestrator.service import Orchestrator

log = logging.getLogger(__name__)

ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)
STREAMS = web.AppKey("streams", set[EventSourceResponse])
MAX_BODY_BYTES = 16 * 1024
SSE_RETRY_MS = 2000


def web_root() -> Path:
    """The page's folder: inside the installed package (wheel), else ``web/`` beside the package (checkout)."""
    packaged = resources.files("orchestrator") / "web"
    if isinstance(packaged, Path) and (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "web"


def create_app(orchestrator: Orchestrator) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[ORCHESTRATOR] = orchestrator
    app[STREAMS] = set()
    app.router.add_get("/health", health)
    app.router.add_get("/api/snapshot/status", status)
    app.router.add_get("/api/snapshot/progress", progress)
    app.router.add_post("/api/snapshot/trigger", trigger)
    app.router.add_get("/api/snapshot/events", events)
    root = web_root()
    app.router.add_get("/", index)
    app.router.add_static("/", root, show_index=False, follow_symlinks=False, append_version=False)
    app.cleanup_ctx.append(_run_service)
    app.on_shutdown.append(_close_streams)
    return app


async def _run_service(app: web.Application) -> AsyncIterator[None]:
    orchestrator = app[ORCHESTRATOR]
    await orchestrator.start()
    yield
    await orchestrator.stop()


async def _close_streams(app: web.Application) -> None:
    # Without this, shutdown waits out its timeout on every open event stream.
    app[ORCHESTRATOR].hub.close()
    streams: set[EventSourceResponse] = app[STREAMS]
    for stream in tuple(streams):
        stream.stop_streaming()


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(web_root() / "index.html", headers={"Cache-Control": "no-cache"})


async def health(request: web.Request) -> web.Response:
    orchestrator = request.app[ORCHESTRATOR]
    return web.json_response({"status": "ok", "version": __version__, "running": orchestrator.runner.running})


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[ORCHESTRATOR].status())


async def progress(request: web.Request) -> web.Response:
    return web.json_response(request.app[ORCHESTRATOR].progress().to_json())


async def trigger(request: web.Request) -> web.Response:
    reason = await _reason_from_body(request)
    orchestrator = request.app[ORCHESTRATOR]
    running = orchestrator.runner.running
    log.info("HTTP trigger from %s%s", request.remote, f" (reason: {reason})" if reason else "")
    await orchestrator.request_run(Source.HTTP, reason)
    message = "Snapshot queued to run when the current one ends" if running else "Snapshot triggered"
    return web.json_response({"success": True, "message": message, "queued": running}, status=202)


async def _reason_from_body(request: web.Request) -> str:
    """An optional JSON body ``{"reason": "..."}``; anything else is a 400 with a message, not a guess."""
    if not request.can_read_body:
        return ""
    raw = await request.read()
    if not raw.strip():
        return ""
    try:
        body: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad_request('body must be JSON like {"reason": "..."}') from None
    if not isinstance(body, dict):
        raise _bad_request('body must be a JSON object like {"reason": "..."}')
    reason = body.get("reason", "")
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise _bad_request("reason must be a string")
    return clean_reason(reason)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"success": False, "message": message}), content_type="application/json")


async def events(request: web.Request) -> web.StreamResponse:
    """``text/event-stream`` of ``status`` events: the current state on connect, then every change.

    Each event carries the whole state, so resuming is simple: a client whose ``Last-Event-ID`` is the
    latest version gets nothing until the next change; any other client gets the current state at once.
    """
    orchestrator = request.app[ORCHESTRATOR]
    hub = orchestrator.hub
    async with sse_response(
        request,
        ping_interval=orchestrator.settings.sse_ping_seconds,
        send_timeout=30,
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
