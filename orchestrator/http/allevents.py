"""One event stream for every job: ``GET /api/events``, so that a page showing several jobs needs one connection.

On connect, one ``status`` event per job, in the jobs file's order, each the job's status document (which
names its ``job``); then a ``status`` event whenever any job's document changes. It is an event stream like a
job's own (orchestrator/http/sse.py): it counts once among the event streams, is let in or refused by the same
room, is pinged, is closed at shutdown, and its client is dropped when it stops reading.

What a client costs: for each job, a reference to the latest document not yet sent to it (a slow client skips
a job's intermediate states, as on the job's own stream). The jobs' hubs are followed once for the whole app
(:class:`AllJobs`: one task per job while any all-jobs stream is open), which hands each new document to every
open stream; a change wakes each stream once, and a quiet service wakes nothing. Each job's event is framed once
and the same bytes are sent on every stream (orchestrator/http/fanout.py). A stream's events are sent at
its client's pace (a client that takes nothing for the send timeout is dropped): the first events are one
document per job, on a service of many jobs more than the write buffer cap, which alone would drop a client
that reads well.

Jobs come and go on a reload. A changed job's unit is replaced once its run has ended; its hub closes then, and
the job's new unit is followed from then on (its document sent at once). A removed job's events just stop. Each
reload the app makes (``POST /api/reload``, SIGHUP: orchestrator/http/reload.py) calls :func:`jobs_changed`,
and the jobs added are followed and sent.

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
from orchestrator.http.fanout import SSE_RETRY_MS, Frame, frame
from orchestrator.http.ports import SERVED, JobPort, Served
from orchestrator.http.streamclient import Client
from orchestrator.http.streamlimits import StreamKind
from orchestrator.live.hub import HubClosed

log = logging.getLogger(__name__)

ALL_EVENTS_PATH = "/api/events"

Offer = tuple[JobPort, int, dict[str, Any]]
"""A job's unit, a version of its status document, and the document."""


class Following:
    """One stream's side: each job's latest document not yet sent; ``wake`` is set when there is one, or when
    the jobs followed may have all ended."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.unsent: dict[str, Offer] = {}
        self._offered: dict[str, tuple[JobPort, int]] = {}

    def offer(self, name: str, unit: JobPort, version: int, document: dict[str, Any]) -> None:
        """Send this version of the job's document next (unless this stream had it, or a newer one, already)."""
        offered = self._offered.get(name)
        if offered is not None and offered[0] is unit and offered[1] >= version:
            return
        self._offered[name] = (unit, version)
        self.unsent[name] = (unit, version, document)
        self.wake.set()

    def take(self) -> list[tuple[str, Offer]]:
        """The documents to send now, each job's latest, and none left."""
        taken = list(self.unsent.items())
        self.unsent.clear()
        return taken


class AllJobs:
    """Every job's hub, followed once for the whole app while any all-jobs stream is open; each new document is
    offered to every open stream."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.streams: set[Following] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._units: dict[str, JobPort] = {}
        """The unit followed for each job (a reload may replace a job's unit)."""
        self._ended: set[JobPort] = set()
        """Units whose hub closed with nothing in their place (the service stops): never followed again."""
        self._framed: dict[str, tuple[str, Frame]] = {}
        """Each job's last event data and its frame: every stream sends the same bytes."""

    @property
    def following(self) -> bool:
        return bool(self._tasks)

    def join(self) -> Following:
        """A new stream: every job's current document is the first it sends."""
        stream = Following()
        self.streams.add(stream)
        self.follow_new()
        for name in self.served.jobs():
            unit = self._units.get(name)
            if unit is not None:
                stream.offer(name, unit, *unit.latest())
        return stream

    def leave(self, stream: Following) -> None:
        self.streams.discard(stream)
        if not self.streams:
            self.close()  # nobody to tell: the hubs need no follower

    def follow_new(self) -> None:
        """Follow each job not followed yet (every one, for the first stream; those a reload added, later)."""
        if not self.streams:
            return
        for name, unit in self.served.jobs().items():
            if name not in self._tasks and unit not in self._ended:
                self._follow(name, unit)

    def framed(self, name: str, unit: JobPort, version: int, document: dict[str, Any]) -> Frame:
        """The ``status`` event of this version of the job's document, framed once for every stream."""
        data = unit.status_event(version, document)
        cached = self._framed.get(name)
        if cached is None or cached[0] is not data:
            cached = (data, frame(data, event="status", event_id=f"{name}:{version}", retry=SSE_RETRY_MS))
            self._framed[name] = cached
        return cached[1]

    def close(self) -> None:
        self._framed.clear()
        tasks = list(self._tasks.values())
        self._tasks.clear()  # at once: a stream that joins before the tasks end follows every job anew
        self._units.clear()
        for task in tasks:
            task.cancel()

    def _follow(self, name: str, unit: JobPort) -> None:
        version, document = unit.latest()
        self._units[name] = unit
        self._offer(name, unit, version, document)
        task = asyncio.create_task(self._next(name, unit, version), name=f"all-jobs stream: {name}")
        task.add_done_callback(_said_if_failed)
        self._tasks[name] = task

    async def _next(self, name: str, unit: JobPort, version: int) -> None:
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
                    self._units[name] = unit
                    version, document = unit.latest()
                self._offer(name, unit, version, document)
        finally:
            if self._tasks.get(name) is asyncio.current_task():
                del self._tasks[name]
                self._units.pop(name, None)
                for stream in self.streams:
                    stream.wake.set()  # maybe nothing is followed any more: its stream then ends

    def _offer(self, name: str, unit: JobPort, version: int, document: dict[str, Any]) -> None:
        for stream in self.streams:
            stream.offer(name, unit, version, document)


ALL_JOBS = web.AppKey("all_jobs", AllJobs)


def add_routes(app: web.Application, settings: HttpSettings) -> None:
    app[ALL_JOBS] = AllJobs(app[SERVED])

    async def events(request: web.Request) -> web.StreamResponse:
        return await sse.serve_stream(
            request, settings, lambda client: _send_all(client, request.app[ALL_JOBS], settings), StreamKind.EVENTS
        )

    app.router.add_get(ALL_EVENTS_PATH, events)


def jobs_changed(app: web.Application) -> None:
    """Jobs may have been added (a reload): the open all-jobs streams follow them."""
    jobs = app.get(ALL_JOBS)
    if jobs is not None:
        jobs.follow_new()


async def _send_all(client: Client, jobs: AllJobs, settings: HttpSettings) -> None:
    """Each job's document, then each change of any job's, until no job is followed any more (the service
    stops) or the client is dropped."""
    stream = jobs.join()
    try:
        while True:
            for name, (unit, version, document) in stream.take():
                framed = jobs.framed(name, unit, version, document)
                await sse.send_event(client, framed, pace=settings.sse_send_timeout)
            if not jobs.following:
                return
            await stream.wake.wait()
            stream.wake.clear()
    finally:
        jobs.leave(stream)


def _said_if_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the all-jobs streams stopped following a job", exc_info=task.exception())
