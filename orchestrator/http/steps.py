"""A run's steps over HTTP: ``GET /api/snapshot/runs/{runId}/steps`` (its timeline) and ``GET /api/snapshot/steps``
(where the time goes, per step name over the job's last completed runs: orchestrator/core/stepstats.py); each
job's at ``/api/jobs/{job}/...`` too (orchestrator/http/jobroutes.py).

The running run's steps come from memory (the runner keeps them; the history gets them at the run's end), any
other run's from the history, on a worker thread like every history read.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from orchestrator.core.events import parse_iso
from orchestrator.core.steps import MAX_STEPS, MORE_STEPS, Step, steps_to_json
from orchestrator.core.stepstats import DEFAULT_RUNS, MAX_RUNS, RunTimeline, summarize
from orchestrator.http.errors import ApiError
from orchestrator.http.jobroutes import JobRef, job_of, run_of_job
from orchestrator.http.ports import SERVED
from orchestrator.http.runs import history_unavailable
from orchestrator.store import RunHistory, StoreUnavailable

RUNS = re.compile(r"^[0-9]{1,9}$")
"""ASCII digits (``int`` also takes " 5", "+5" and other scripts' digits, which the document does not), few
enough for ``int`` to read (it refuses a number of more than 4300 digits)."""


async def run_steps(request: web.Request) -> web.Response:
    """One run's steps, in order: the running run's so far (the current one last, not ended), or as the history
    kept them (none for a run recorded before runs kept steps)."""
    job = job_of(request)
    run_id = request.match_info["runId"]
    running = job.view.running_steps()
    if running is not None and running.run_id == run_id:
        return web.json_response(_timeline(run_id, "running", running.steps))
    try:
        status, steps = await asyncio.to_thread(_stored_steps, request.app[SERVED].history, job, run_id)
    except StoreUnavailable as exc:
        raise history_unavailable(exc) from None
    return web.json_response(_timeline(run_id, status, steps))


async def step_stats(request: web.Request) -> web.Response:
    """``?runs=N`` (1-100, default 20): per step name over the job's last N completed runs."""
    job = job_of(request)
    raw = request.query.get("runs", str(DEFAULT_RUNS))
    if RUNS.match(raw) is None or not 1 <= int(raw) <= MAX_RUNS:
        raise ApiError(400, f"runs must be a whole number from 1 to {MAX_RUNS}, got {raw[:40]!r}")
    history = request.app[SERVED].history
    try:
        completed = await asyncio.to_thread(history.completed_steps, int(raw), job=job.name)
    except StoreUnavailable as exc:
        raise history_unavailable(exc) from None
    timelines = [
        RunTimeline(stored.run_id, parse_iso(stored.document.get("startedAt")), stored.duration_seconds, steps)
        for stored, steps in completed
    ]
    return web.json_response(summarize(timelines).to_json())


def _stored_steps(history: RunHistory, job: JobRef, run_id: str) -> tuple[str, tuple[Step, ...]]:
    """The run's status and steps as the history has them; a 404 if there is no such run of ``job``."""
    stored = run_of_job(history.get(run_id), job, run_id)
    # Pruned between the two reads: no steps, as for a run that never had any (its record was just read).
    steps = history.steps(run_id) or ()
    return str(stored.document.get("status", "")), steps


def _timeline(run_id: str, status: str, steps: tuple[Step, ...]) -> dict[str, Any]:
    # A run keeps MAX_STEPS steps; the last one then stands for every later step under MORE_STEPS.
    truncated = len(steps) >= MAX_STEPS and steps[-1].name == MORE_STEPS
    return {"runId": run_id, "status": status, "steps": steps_to_json(steps), "truncated": truncated}
