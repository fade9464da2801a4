"""The run history over HTTP: a job's runs (``/api/snapshot/runs``, ``/api/jobs/{job}/runs``), one of them by its
id (``.../runs/{runId}``), and the runs of every job (``GET /api/runs``, ``?job=`` for one job's).

Pages are newest first: ``?limit=`` (1-500, default 50) and ``?cursor=`` (a page's ``nextCursor``). Each run
says its job (``job``), runs recorded before a service had several jobs too (they are the default job's). The
history is read on a worker thread, like every history read.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from orchestrator.http.errors import ApiError
from orchestrator.http.jobroutes import job_named, job_of, run_of_job
from orchestrator.http.ports import SERVED
from orchestrator.store import MAX_PAGE, HistoryNotOpened, StoreUnavailable

DEFAULT_PAGE = 50


async def job_runs(request: web.Request) -> web.Response:
    """The job's runs, newest first."""
    return await _page(request, job_of(request).name)


async def all_runs(request: web.Request) -> web.Response:
    """Every job's runs, newest first; ``?job=NAME``: that job's only (a 404 if the service has no such job)."""
    name = request.query.get("job")
    return await _page(request, None if name is None else job_named(request, name).name)


async def run(request: web.Request) -> web.Response:
    """One run of the job by its id; a 404 for no such run, and for a run of another job."""
    job = job_of(request)
    run_id = request.match_info["runId"]
    try:
        stored = await asyncio.to_thread(request.app[SERVED].history.get, run_id)
    except StoreUnavailable as exc:
        raise history_unavailable(exc) from None
    return web.json_response(run_of_job(stored, job, run_id).document)


async def _page(request: web.Request, job: str | None) -> web.Response:
    history = request.app[SERVED].history
    raw_limit = request.query.get("limit", str(DEFAULT_PAGE))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}, got {raw_limit[:40]!r}") from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit}")
    cursor = request.query.get("cursor") or None
    try:
        page = await asyncio.to_thread(history.page, limit=limit, cursor=cursor, job=job)
    except KeyError:
        # The run the cursor points at is gone (pruned) or never was: not found, like the run itself.
        raise ApiError(404, f"cursor {(cursor or '')[:80]!r} is no run in the history") from None
    except StoreUnavailable as exc:
        raise history_unavailable(exc) from None
    return web.json_response({"runs": [run.document for run in page.runs], "nextCursor": page.next_cursor})


def history_unavailable(exc: StoreUnavailable) -> ApiError:
    """The 503 for a history that cannot be read (or was never opened: the log said why at start)."""
    if isinstance(exc, HistoryNotOpened):
        return ApiError(503, str(exc))
    return ApiError(503, f"the run history cannot be read: {exc}")
