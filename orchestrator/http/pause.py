"""Pause and resume of a job's automatic schedule: ``POST /api/snapshot/pause`` and ``/resume`` (the default
job), ``POST /api/jobs/{job}/pause`` and ``/resume``.

A pause is part of the persisted state (``State.paused``), so it survives restarts. While paused the interval
timer starts nothing (see ``JobUnit._due``); manual triggers (HTTP, file, CLI, Run Now) run as always.
On resume the schedule is what it would have been: if a run fell due during the pause it starts at once,
one run however many intervals were missed, like a run that fell due while the service was down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from orchestrator.core.events import iso
from orchestrator.core.records import Pause
from orchestrator.http.clientaddr import client_of
from orchestrator.http.jobroutes import job_of
from orchestrator.http.ports import Controls

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a pause or resume request did."""

    paused: Pause | None
    """The pause now in force (``None``: running on schedule)."""
    changed: bool
    """``False``: it was already so (an earlier pause stands)."""
    saved: bool = True
    """``False``: the state file could not be written; the change holds until the service restarts."""


def pause(service: Controls, reason: str = "") -> Outcome:
    """Pause the automatic schedule; an existing pause stands (its time and reason are kept)."""
    current = service.view.paused
    if current is not None:
        return Outcome(current, changed=False)
    paused = Pause(service.view.now(), reason)
    return Outcome(paused, changed=True, saved=service.commands.set_pause(paused))


def resume(service: Controls) -> Outcome:
    """Resume the automatic schedule: a run that fell due during the pause starts at once (one run)."""
    if service.view.paused is None:
        return Outcome(None, changed=False)
    return Outcome(None, changed=True, saved=service.commands.set_pause(None))


ReasonReader = Callable[[web.Request], Awaitable[str]]


async def pause_route(request: web.Request, read_reason: ReasonReader) -> web.Response:
    """``POST .../pause``; ``read_reason`` parses the optional ``{"reason": "..."}`` body (400 if it is not that)."""
    job = job_of(request)
    reason = await read_reason(request)
    outcome = pause(job, reason)
    if outcome.changed:
        log.info("automatic %s paused from %s%s", job.automatic_runs, client_of(request).address, _because(reason))
        message = f"Automatic {job.automatic_runs} paused; manual triggers still run"
    else:
        since = iso(outcome.paused.since) if outcome.paused else None
        message = f"Already paused since {since}; that pause stands"
    return _answer(message, outcome)


async def resume_route(request: web.Request, read_reason: ReasonReader) -> web.Response:
    """``POST .../resume``; the reason is only logged."""
    job = job_of(request)
    reason = await read_reason(request)  # only logged
    view = job.view
    outcome = resume(job)
    runs = job.automatic_runs
    if outcome.changed:
        due = view.next_run_at()
        at_once = due is not None and due <= view.now() and not view.running
        log.info("automatic %s resumed from %s%s", runs, client_of(request).address, _because(reason))
        message = (
            f"Automatic {runs} resumed; one fell due during the pause and starts now"
            if at_once
            else f"Automatic {runs} resumed; next at {iso(due)}"
            if due is not None
            else "Resumed; the job has no automatic runs (it runs on triggers)"
        )
    else:
        message = f"Not paused; automatic {runs} are on"
    return _answer(message, outcome)


def _because(reason: str) -> str:
    return f" (reason: {reason})" if reason else ""


def _answer(message: str, outcome: Outcome) -> web.Response:
    if not outcome.saved:
        message += " (but the state file could not be written: it holds until the service restarts; see the log)"
    paused = outcome.paused.to_json() if outcome.paused else None
    return web.json_response({"success": True, "message": message, "paused": paused})
