"""The HTTP surface: routes, the SSE stream, the static page, and the service's lifecycle in the app."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator import __version__
from orchestrator.core.events import Source, TriggerNotSaved, clean_reason, iso
from orchestrator.http import allevents, clientaddr, guard, headers, idempotency, jobroutes, reload, signals, sse
from orchestrator.http.errors import ApiError, Handler, json_error
from orchestrator.http.errors import retry_after as retry_after_header
from orchestrator.http.jobroutes import JSON_HEADERS, add_job_route, job_of
from orchestrator.http.page import add_page, web_root
from orchestrator.http.ports import SERVED, Served
from orchestrator.http.streamlimits import StreamKind
from orchestrator.ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger(__name__)

RESTORE = web.AppKey("restore", contextlib.ExitStack)
"""What the service's cleanup puts back: the loop's exception handler and signal handlers it replaced."""
MAX_BODY_BYTES = 16 * 1024
TRIGGER_RETRY_SECONDS = 5


OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def create_app(service: Served, *, web_dir: Path | None = None) -> web.Application:
    """The app serving ``service`` (and starting and stopping it); ``web_dir`` replaces the page's folder (tests
    serve a made-up one)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SERVED] = service
    app[RESTORE] = contextlib.ExitStack()
    settings = service.settings.http
    clientaddr.install(app, clientaddr.TrustedProxies(settings.trusted_proxies))
    the_guard = guard.Guard(settings, service.clock, MAX_BODY_BYTES)
    guard.install(app, the_guard)
    headers.install(app, settings.frame_ancestors, also=[the_guard.answer_headers])  # CSP, framing; CORS: guard.py
    app.router.add_get("/health", health)
    # Every job's status; first, as the router tries the routes under /api/jobs in the order they were added.
    jobroutes.add_routes(app)
    # Each job's operations at /api/snapshot/... (the default job) and /api/jobs/{job}/...: jobroutes.py.
    add_job_route(app, "GET", "/status", status)
    add_job_route(app, "GET", "/progress", progress)
    add_job_route(app, "POST", "/trigger", idempotency.once(trigger))  # Idempotency-Key: idempotency.py
    add_job_route(app, "POST", "/cancel", cancel)
    # Each job's runs, and every job's (runs.py).
    add_job_route(app, "GET", "/runs", _later("runs", "job_runs"))
    add_job_route(app, "GET", "/runs/{runId}", _later("runs", "run"))
    app.router.add_get("/api/runs", _later("runs", "all_runs"))
    app.router.add_get("/api/openapi.json", openapi)
    sse.add_routes(app, settings, service.clock)
    allevents.add_routes(app, settings)  # one stream of every job's status
    reload.add_routes(app)  # read the jobs file again
    # A run's log and its live lines (logs.py); a run's steps and where the time goes over the last runs
    # (steps.py); pause and resume (pause.py).
    add_job_route(app, "GET", "/runs/{runId}/log", _later("logs", "get_log"))
    add_job_route(app, "GET", "/runs/{runId}/log/stream", _later("logs", "follow_log"))
    add_job_route(app, "GET", "/runs/{runId}/steps", _later("steps", "run_steps"))
    add_job_route(app, "GET", "/steps", _later("steps", "step_stats"))
    add_job_route(app, "POST", "/pause", _later("pause", "pause_route", _reason_from_body))
    add_job_route(app, "POST", "/resume", _later("pause", "resume_route", _reason_from_body))
    # Stream tickets for other origins, the status badge (embed.py).
    app.router.add_post("/api/stream-ticket", _later("embed", "stream_ticket"))
    app.router.add_get("/badge/{job}.svg", _later("embed", "badge"))
    idempotency.install(app, service.clock)  # double-click safety for the trigger
    # Prometheus text: a read like the status document (guard.py: the same token rule).
    app.router.add_get(guard.METRICS_PATH, metrics)
    service.metrics.count_streams(
        lambda: sse.open_streams(app, StreamKind.EVENTS), lambda: sse.open_streams(app, StreamKind.LOG)
    )
    add_page(app, web_dir or web_root())
    app.cleanup_ctx.append(_run_service)
    app.on_shutdown.insert(0, _stop_service)
    return app


def _later(module: str, name: str, *args: Any) -> Handler:
    """The handler ``name`` of ``orchestrator.http.<module>`` (given ``args`` after the request), imported at the
    first request that needs it: what a page asks for now and then (the runs, a run's log and steps, a pause,
    the badge) costs the start and the idle service nothing."""

    async def handler(request: web.Request) -> web.StreamResponse:
        found = getattr(importlib.import_module(f"orchestrator.http.{module}"), name)
        response: web.StreamResponse = await found(request, *args)
        return response

    return handler


async def _run_service(app: web.Application) -> AsyncIterator[None]:
    """Start the service; at cleanup stop it and put back the loop's exception and signal handlers as they were
    before (tests run many apps on one loop; a process may serve the app again)."""
    service = app[SERVED]
    with app[RESTORE] as restore:
        _quiet_accept_errors(asyncio.get_running_loop(), restore)
        await service.start()
        with reload.on_hangup(app):  # SIGHUP reads the jobs file again, until the app stops
            yield
        await reload.settled(app)
        await service.stop()  # already done by _stop_service, unless shutdown never got that far


ACCEPT_ERROR_QUIET_SECONDS = 60.0


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop, restore: contextlib.ExitStack) -> None:
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
    restore.callback(loop.set_exception_handler, previous)


async def _stop_service(app: web.Application) -> None:
    # First thing on SIGTERM, before aiohttp drains in-flight requests (up to its shutdown timeout): no trigger
    # may start a run from here on, and the running job is stopped now, not after the drain.
    service = app[SERVED]
    _ignore_further_stop_signals(service.settings.job.kill_grace_seconds, app[RESTORE])
    await service.stop()


def _ignore_further_stop_signals(grace: float, restore: contextlib.ExitStack) -> None:
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
        signals.replace_handler(loop, sig, already_stopping, restore)


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "running": request.app[SERVED].view.running,
            "sseClients": sse.open_streams(request.app, StreamKind.EVENTS),
            "logStreams": sse.open_streams(request.app, StreamKind.LOG),
        }
    )


async def status(request: web.Request) -> web.Response:
    return json_bytes(job_of(request).view.status_json())


def json_bytes(body: bytes) -> web.Response:
    """An answer of JSON already encoded, with the headers of ``web.json_response``."""
    return web.Response(body=body, headers=JSON_HEADERS)


async def progress(request: web.Request) -> web.Response:
    return web.json_response(job_of(request).view.progress().to_json())


async def trigger(request: web.Request) -> web.Response:
    job = job_of(request)
    reason = await _reason_from_body(request)
    running = job.view.running
    who = clientaddr.client_of(request).address
    of = "" if job.name == jobroutes.SNAPSHOT else f" of job {job.name}"
    log.info("HTTP trigger%s from %s%s", of, who, f" (reason: {reason})" if reason else "")
    called = job.called.capitalize()
    try:
        requested = await job.commands.request_run(Source.HTTP, reason)
    except TriggerNotSaved as exc:
        # Not on disk, so not taken: a 202 would promise a run that a crash could lose. Triggers coalesce,
        # so a retry never runs twice.
        raise _unavailable(f"{called} not triggered: {exc}; try again", retry_after=TRIGGER_RETRY_SECONDS) from None
    message = f"{called} queued to run when the current one ends" if running else f"{called} triggered"
    # requestedAt names the run this trigger causes: the first to start at or after it (``trigger --wait``).
    return web.json_response(
        {"success": True, "message": message, "queued": running, "requestedAt": iso(requested.at)}, status=202
    )


async def cancel(request: web.Request) -> web.Response:
    """End the running run the way a timeout would (SIGTERM, grace, SIGKILL); it is recorded as cancelled."""
    job = job_of(request)
    reason = await _reason_from_body(request)
    already = job.view.stopping
    run_id = job.commands.cancel(reason or "cancelled by request")
    if run_id is None:
        return json_error(409, job.not_running)
    if already is not None:
        # Still 202: the caller's wish (the run ends) is being carried out, for the reason given first.
        message = f"Already stopping {job.run_called(run_id)} ({already})"
    else:
        message = f"Cancelling {job.run_called(run_id)}"
        who = clientaddr.client_of(request).address
        log.info("HTTP cancel of %s from %s%s", job.run_called(run_id), who, f" (reason: {reason})" if reason else "")
    return web.json_response({"success": True, "message": message, "runId": run_id}, status=202)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the service's metrics in the Prometheus text format (see orchestrator/ops/metrics.py)."""
    body = request.app[SERVED].metrics.render()
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


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _unavailable(message: str, *, retry_after: int | None = None) -> ApiError:
    return ApiError(503, message, retry_after_header(retry_after))
