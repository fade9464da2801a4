"""One event stream for every job: ``GET /api/events``, so that a page showing several jobs needs one connection.

On connect, one ``status`` event per job, in the jobs file's order, each the job's status document (which
names its ``job``); then a ``status`` event whenever any job's document changes. It is an event stream like a
job's own (orchestrator/http/sse.py): it counts once among the event streams, is let in or refused by the same
room, is pinged, is closed at shutdown, and its client is dropped when it stops reading.

What a client costs: for each job, the latest document not yet sent to it (a slow client skips a job's
intermediate states, as on the job's own stream) and one task waiting for the job's next one. Its events are
sent at the client's pace (a client that takes nothing for the send timeout is dropped): the first events are
one document per job, on a service of many jobs more than the write buffer cap, which alone would drop a client
that reads well.

Jobs come and go on a reload. A changed job's unit is replaced once its run has ended; its hub closes then, and
the stream follows the job's new unit (its document is sent at once). A removed job's entry just stops. Each
reload the app makes (``POST /api/reload``, SIGHUP: orchestrator/http/reload.py) calls :func:`jobs_changed`, and
each open stream then follows the jobs it did not have.

Event ids are ``<job>:<version>``. A client that reconnects gets every job's current document again (one id
cannot say where a client was in each job's versions, so ``Last-Event-ID`` is not used).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from orchestrator.config import HttpSettings
from orchestrator.http import sse
from orchestrator.http.ports import SERVED, JobPort, Served
from orchestrator.http.streamlimits import StreamKind
from orchestrator.live.hub import HubClosed

log = logging.getLogger(__name__)

ALL_EVENTS_PATH = "/api/events"
WAKES = web.AppKey("all_jobs_stream_wakes", set[asyncio.Event])
"""Each open all-jobs stream's wake-up: set when the jobs may have changed (a reload)."""


def add_routes(app: web.Application, settings: HttpSettings) -> None:
    app[WAKES] = set()

    async def events(request: web.Request) -> web.StreamResponse:
        return await sse.serve_stream(
            request, settings, lambda client: _send_all(client, request.app, settings), StreamKind.EVENTS
        )

    app.router.add_get(ALL_EVENTS_PATH, events)


def jobs_changed(app: web.Application) -> None:
    """Tell every open all-jobs stream that jobs may have been added."""
    for wake in app.get(WAKES, ()):
        wake.set()


class Following:
    """The jobs one stream follows: each job's unit and a task waiting for its next document, and each job's
    latest document not yet sent. ``wake`` is set whenever there is something to send, or to look at."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.wake = asyncio.Event()
        self.unsent: dict[str, tuple[JobPort, int, dict[str, Any]]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._ended: set[JobPort] = set()
        """Units whose hub closed with nothing in their place (the service stops): not followed again."""

    @property
    def following(self) -> bool:
        return bool(self.tasks or self.unsent)

    def follow_new(self) -> None:
        """Follow each job not followed yet: its current document is the next to send."""
        for name, unit in self.served.jobs().items():
            if name not in self.tasks and unit not in self._ended:
                version, document = unit.latest()
                self.unsent[name] = (unit, version, document)
                self.wake.set()
                task = asyncio.create_task(self._follow(name, unit, version), name=f"all-jobs stream {name}")
                task.add_done_callback(_said_if_failed)
                self.tasks[name] = task

    def take(self) -> list[tuple[str, tuple[JobPort, int, dict[str, Any]]]]:
        """The documents to send now, each job's latest, and none left."""
        taken = list(self.unsent.items())
        self.unsent.clear()
        return taken

    def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    async def _follow(self, name: str, unit: JobPort, version: int) -> None:
        try:
            while True:
                try:
                    version, document = await unit.next_after(version)
                except HubClosed:
                    successor = self.served.jobs().get(name)
                    if successor is None or successor is unit:
                        self._ended.add(unit)
                        return
                    unit = successor  # the job was changed by a reload: its new unit from now on
                    version, document = unit.latest()
                self.unsent[name] = (unit, version, document)
                self.wake.set()
        finally:
            if self.tasks.get(name) is asyncio.current_task():
                del self.tasks[name]
            self.wake.set()


async def _send_all(client: sse.Client, app: web.Application, settings: HttpSettings) -> None:
    """Each job's document, then each change of any job's, until no job is left to follow (the service stops)
    or the client is dropped."""
    following = Following(app[SERVED])
    app[WAKES].add(following.wake)
    try:
        following.follow_new()
        while following.following:
            await following.wake.wait()
            following.wake.clear()
            following.follow_new()
            for name, (unit, version, document) in following.take():
                data = unit.status_event(version, document)
                event_id = f"{name}:{version}"
                await sse.send_event(client, data, event="status", event_id=event_id, pace=settings.sse_send_timeout)
    finally:
        app[WAKES].discard(following.wake)
        following.close()


def _said_if_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the all-jobs stream stopped following a job", exc_info=task.exception())
