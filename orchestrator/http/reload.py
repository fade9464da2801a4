"""Reading the jobs file again: ``POST /api/reload`` (a change: it needs the token like any) and SIGHUP.

Both call the service's ``reload()``, which checks the file whole before it changes anything: on any mistake
the running jobs stay as they are, and the one line that says what is wrong is the answer's ``message`` (409)
or, for SIGHUP, in the log. 409 rather than 400: the request is right, the file it asks for cannot be used now
(or there is none: a service started without ``--jobs`` has nothing to read again); once the file is fixed,
the same request works. The answer to a reload that went through says what changed::

    {"success": true, "reloaded": true, "summary": "added report; 2 unchanged",
     "added": ["report"], "removed": [], "changed": []}

Every reload made here tells the open all-jobs streams (orchestrator/http/allevents.py), which then follow the
jobs added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

from aiohttp import web

from orchestrator.http import allevents, signals
from orchestrator.http.clientaddr import client_of
from orchestrator.http.errors import ApiError
from orchestrator.http.ports import SERVED
from orchestrator.jobsfile.plan import Plan, ReloadRefused

log = logging.getLogger(__name__)

RELOADS = web.AppKey("reloads", set[asyncio.Task[None]])
"""Reloads SIGHUP started and not yet ended: the app waits for them before it stops the service."""


def add_routes(app: web.Application) -> None:
    app[RELOADS] = set()
    app.router.add_post("/api/reload", reload_route)


async def reload_route(request: web.Request) -> web.Response:
    log.info("reading the jobs file again, as %s asked", client_of(request).address)
    try:
        plan = await reload_jobs(request.app)
    except ReloadRefused as exc:
        raise ApiError(409, str(exc)) from None
    return web.json_response(
        {
            "success": True,
            "reloaded": True,
            "summary": plan.summary(),
            "added": list(plan.added),
            "removed": list(plan.removed),
            "changed": list(plan.changed),
        }
    )


async def reload_jobs(app: web.Application) -> Plan:
    """The service's reload (it logs what changed, or why not: ``ReloadRefused``); the all-jobs streams are
    told of the jobs it added."""
    plan = await app[SERVED].reload()
    allevents.jobs_changed(app)
    return plan


@contextlib.contextmanager
def on_hangup(app: web.Application) -> Iterator[None]:
    """SIGHUP reads the jobs file again while the block runs; the handler there was before is put back after
    it. Each signal's reload runs in a task of its own (the service takes them one at a time)."""
    loop = asyncio.get_running_loop()
    tasks = app[RELOADS]

    def hangup() -> None:
        task = loop.create_task(_reload_on_signal(app), name="reload on SIGHUP")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with contextlib.ExitStack() as restore:
        signals.replace_handler(loop, signal.SIGHUP, hangup, restore)
        yield


async def settled(app: web.Application) -> None:
    """Until every reload SIGHUP started has ended."""
    tasks = app[RELOADS]
    while tasks:
        await asyncio.wait(tuple(tasks))


async def _reload_on_signal(app: web.Application) -> None:
    log.info("SIGHUP: reading the jobs file again")
    try:
        await reload_jobs(app)
    except ReloadRefused as exc:
        # A file that cannot be used is logged as an error by the reload itself; this says the signal was heard.
        log.info("SIGHUP: jobs file not read again: %s", exc)
    except Exception:
        log.exception("SIGHUP: reading the jobs file again failed; the running jobs stay")
