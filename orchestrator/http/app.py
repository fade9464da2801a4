"""The HTTP surface: routes, the SSE stream, the static page, and the service's lifecycle in the app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator import __version__
from orchestrator.core.events import Source, clean_reason, iso
from orchestrator.http import clientaddr, guard, headers, idempotency
from orchestrator.http import logs as logroutes
from orchestrator.http import pause as control
from orchestrator.http import sse as stream
from orchestrator.http.streamlimits import StreamKind
from orchestrator.ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from orchestrator.service import Orchestrator, TriggerNotSaved
from orchestrator.store import MAX_PAGE, HistoryNotOpened, StoreUnavailable

log = logging.getLogger(__name__)

ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)
WEB_DIR = web.AppKey("web_dir", Path)
MAX_BODY_BYTES = 16 * 1024
DEFAULT_PAGE = 50
TRIGGER_RETRY_SECONDS = 5
PAGE_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
"""Names the page's files may have: no dot-files, nothing a URL or a route pattern would need to escape."""


OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def web_root() -> Path:
    """The page's folder: inside the installed package (wheel), else ``web/`` beside the package (checkout)."""
    packaged = resources.files("orchestrator") / "web"
    if isinstance(packaged, Path) and (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "web"


def create_app(orchestrator: Orchestrator, *, web_dir: Path | None = None) -> web.Application:
    """The app; ``web_dir`` replaces the page's folder (tests serve a made-up one)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[ORCHESTRATOR] = orchestrator
    clientaddr.install(app, clientaddr.TrustedProxies(orchestrator.settings.trusted_proxies))
    guard.install(app, guard.Guard(orchestrator.settings, orchestrator.clock, MAX_BODY_BYTES))
    headers.install(app, orchestrator.settings.frame_ancestors)  # CSP, framing: orchestrator/http/headers.py
    app.router.add_get("/health", health)
    app.router.add_get("/api/snapshot/status", status)
    app.router.add_get("/api/snapshot/progress", progress)
    app.router.add_post("/api/snapshot/trigger", idempotency.once(trigger))  # Idempotency-Key: idempotency.py
    app.router.add_post("/api/snapshot/cancel", cancel)
    app.router.add_get("/api/snapshot/runs", runs)
    app.router.add_get("/api/snapshot/runs/{runId}", run)
    app.router.add_get("/api/openapi.json", openapi)
    stream.add_routes(app, ORCHESTRATOR)
    logroutes.add_routes(app, ORCHESTRATOR)  # a run's log, and its live lines (issue 4: logroutes.py)
    # Pause/resume and double-click safety (issue 4): control.py, idempotency.py.
    control.add_routes(app, ORCHESTRATOR, _reason_from_body)
    idempotency.install(app, orchestrator.clock)
    # Metrics (issue 4): Prometheus text; a read like the status document (guard.py: same token rule).
    app.router.add_get(guard.METRICS_PATH, metrics)
    orchestrator.metrics.count_streams(
        lambda: stream.open_streams(app, StreamKind.EVENTS), lambda: stream.open_streams(app, StreamKind.LOG)
    )
    add_page(app, web_dir or web_root())
    app.cleanup_ctx.append(_run_service)
    app.on_shutdown.insert(0, _stop_service)
    return app


async def _run_service(app: web.Application) -> AsyncIterator[None]:
    orchestrator = app[ORCHESTRATOR]
    _quiet_accept_errors(asyncio.get_running_loop())
    await orchestrator.start()
    yield
    await orchestrator.stop()  # already done by _stop_service, unless shutdown never got that far


ACCEPT_ERROR_QUIET_SECONDS = 60.0


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Out of file descriptors, asyncio logs a traceback for every failed ``accept`` (tens of thousands a
    minute under a connection flood). Log it once a minute instead; everything else as asyncio would."""
    last = -ACCEPT_ERROR_QUIET_SECONDS
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = loop.time()
            if now - last >= ACCEPT_ERROR_QUIET_SECONDS:
                last = now
                log.error("cannot accept connections: %s (said once a minute)", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def _stop_service(app: web.Application) -> None:
    # First thing on SIGTERM, before aiohttp drains in-flight requests (up to its shutdown timeout): no trigger
    # may start a run from here on, and the running job is stopped now, not after the drain.
    orchestrator = app[ORCHESTRATOR]
    _ignore_further_stop_signals(orchestrator.settings.kill_grace_seconds)
    await orchestrator.stop()


def _ignore_further_stop_signals(grace: float) -> None:
    """A second Ctrl-C (or SIGTERM) would abort the shutdown half-way, with the job's SIGTERM sent but its
    SIGKILL not: a job that ignores SIGTERM would live on, unrecorded, beside the next service's runs."""
    loop = asyncio.get_running_loop()
    said = False

    def already_stopping() -> None:
        nonlocal said
        if not said:
            said = True
            log.warning("already stopping: the job gets up to %gs to end; use SIGKILL to force", grace)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, not Unix
            loop.add_signal_handler(sig, already_stopping)


def add_page(app: web.Application, root: Path) -> None:
    """One route per file of the page, found now: anything else (``..``, encoded dots, folders) is simply not
    a route, so it is a 404 by construction; a file is also checked again when served (see ``_serve``)."""
    root = root.resolve()
    app[WEB_DIR] = root
    app.router.add_get("/", _file_handler("index.html"))
    for relative in page_files(root):
        app.router.add_get("/" + relative, _file_handler(relative))


def page_files(root: Path) -> Iterator[str]:
    """The page's files under ``root`` as ``a/b.js``: regular files, or symlinks to files inside ``root``."""
    for folder, dirs, files in os.walk(root):  # never into symlinked folders (followlinks=False)
        dirs[:] = sorted(d for d in dirs if PAGE_FILE_NAME.match(d))
        for name in sorted(files):
            path = Path(folder, name)
            if PAGE_FILE_NAME.match(name) and _inside(root, path) is not None:
                yield path.relative_to(root).as_posix()


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved, if it is a regular file inside ``root`` (a symlink may point within ``root`` only)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # gone, or a symlink loop
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


def _file_handler(relative: str) -> guard.Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        # Checked again per request: the file may have been replaced by a symlink since the start. (Whoever
        # can write the page's folder could change the page anyway; this keeps the rest of the disk out.)
        root = request.app[WEB_DIR]
        real = _inside(root, root / relative)
        if real is None:
            raise web.HTTPNotFound()
        return web.FileResponse(real, headers={"Cache-Control": "no-cache"})

    return serve


async def health(request: web.Request) -> web.Response:
    orchestrator = request.app[ORCHESTRATOR]
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "running": orchestrator.runner.running,
            "sseClients": stream.open_streams(request.app, StreamKind.EVENTS),
            "logStreams": stream.open_streams(request.app, StreamKind.LOG),
        }
    )


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[ORCHESTRATOR].status())


async def progress(request: web.Request) -> web.Response:
    return web.json_response(request.app[ORCHESTRATOR].progress().to_json())


async def trigger(request: web.Request) -> web.Response:
    reason = await _reason_from_body(request)
    orchestrator = request.app[ORCHESTRATOR]
    running = orchestrator.runner.running
    who = clientaddr.client_of(request).address
    log.info("HTTP trigger from %s%s", who, f" (reason: {reason})" if reason else "")
    try:
        requested = await orchestrator.request_run(Source.HTTP, reason)
    except TriggerNotSaved as exc:
        # Not on disk, so not taken: a 202 would promise a run that a crash could lose. Triggers coalesce,
        # so a retry never runs twice.
        raise _unavailable(f"Snapshot not triggered: {exc}; try again", retry_after=TRIGGER_RETRY_SECONDS) from None
    message = "Snapshot queued to run when the current one ends" if running else "Snapshot triggered"
    # requestedAt names the run this trigger causes: the first to start at or after it (``trigger --wait``).
    return web.json_response(
        {"success": True, "message": message, "queued": running, "requestedAt": iso(requested.at)}, status=202
    )


async def cancel(request: web.Request) -> web.Response:
    """End the running run the way a timeout would (SIGTERM, grace, SIGKILL); it is recorded as cancelled."""
    reason = await _reason_from_body(request)
    orchestrator = request.app[ORCHESTRATOR]
    already = orchestrator.runner.stopping
    run_id = orchestrator.cancel(reason or "cancelled by request")
    if run_id is None:
        return web.json_response({"success": False, "message": "No snapshot is running"}, status=409)
    if already is not None:
        # Still 202: the caller's wish (the run ends) is being carried out, for the reason given first.
        message = f"Already stopping snapshot {run_id} ({already.reason})"
    else:
        message = f"Cancelling snapshot {run_id}"
        who = clientaddr.client_of(request).address
        log.info("HTTP cancel of run %s from %s%s", run_id, who, f" (reason: {reason})" if reason else "")
    return web.json_response({"success": True, "message": message, "runId": run_id}, status=202)


async def runs(request: web.Request) -> web.Response:
    """The run history, newest first: ``?limit=`` (1-500, default 50) and ``?cursor=`` (a page's nextCursor)."""
    history = request.app[ORCHESTRATOR].history
    raw_limit = request.query.get("limit", str(DEFAULT_PAGE))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise _bad_request(f"limit must be a whole number from 1 to {MAX_PAGE}, got {raw_limit[:40]!r}") from None
    if not 1 <= limit <= MAX_PAGE:
        raise _bad_request(f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit}")
    cursor = request.query.get("cursor") or None
    try:
        page = await asyncio.to_thread(history.page, limit=limit, cursor=cursor)
    except KeyError:
        # The run the cursor points at is gone (pruned) or never was: not found, like the run itself.
        raise _not_found(f"cursor {(cursor or '')[:80]!r} is no run in the history") from None
    except StoreUnavailable as exc:
        raise _history_unavailable(exc) from None
    return web.json_response({"runs": [run.document for run in page.runs], "nextCursor": page.next_cursor})


async def run(request: web.Request) -> web.Response:
    """One run of the history by its id."""
    history = request.app[ORCHESTRATOR].history
    run_id = request.match_info["runId"]
    try:
        stored = await asyncio.to_thread(history.get, run_id)
    except StoreUnavailable as exc:
        raise _history_unavailable(exc) from None
    if stored is None:
        raise _not_found(f"No run {run_id[:80]!r} in the history")
    return web.json_response(stored.document)


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"success": False, "message": message}), content_type="application/json")


def _history_unavailable(exc: StoreUnavailable) -> web.HTTPServiceUnavailable:
    if isinstance(exc, HistoryNotOpened):
        return _unavailable(str(exc))
    return _unavailable(f"the run history cannot be read: {exc}")


def _unavailable(message: str, *, retry_after: int | None = None) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(
        text=json.dumps({"success": False, "message": message}),
        content_type="application/json",
        headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
    )


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the service's metrics in the Prometheus text format (see orchestrator/ops/metrics.py)."""
    body = request.app[ORCHESTRATOR].metrics.render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-store"})


async def openapi(request: web.Request) -> web.FileResponse:
    """The API's OpenAPI 3 document, the same file that is kept in the repository."""
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/json"})


async def _reason_from_body(request: web.Request) -> str:
    """An optional JSON body ``{"reason": "..."}``; anything else is a 400 with a message, not a guess."""
    if not request.body_exists:  # (not can_read_body: false once the idempotency check has read it)
        return ""
    raw = await request.read()
    if not raw.strip():
        return ""
    try:
        body: Any = json.loads(raw)
    # ValueError: not JSON, not UTF-8, or a number of more than 4300 digits; RecursionError: ``[[[[...``
    # nested deeper than the stack. Each is the client's mistake: a 400, never a 500 with a traceback.
    except (ValueError, RecursionError):
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
