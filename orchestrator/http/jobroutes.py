"""Which job a request means, and the routes every job has.

Every operation on one job is one handler served at two paths: ``/api/snapshot/...``, the default job (as
before there were several jobs: ``snapshot`` without a jobs file), and ``/api/jobs/{job}/...``, the job named.
The handler asks :func:`job_of` for its job; a name the service has no job of is a JSON 404 naming it. A run
read by its id must be a run of that job (:func:`run_of_job`): another job's run is not found on this job's
paths, as if it did not exist.

``GET /api/jobs``: every job's status document, in the jobs file's order, and the default job's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from orchestrator.http.errors import ApiError, Handler
from orchestrator.http.ports import SERVED, JobPort
from orchestrator.store import StoredRun

DEFAULT_PREFIX = "/api/snapshot"
"""The default job's operations, at the paths they had before there were several jobs."""
JOB_PREFIX = "/api/jobs/{job}"
SNAPSHOT = "snapshot"
"""The one job of a service without a jobs file: answers name it as they always did."""


@dataclass(frozen=True, slots=True)
class JobRef:
    """One job as a request found it: its name and its unit (the status view and the commands)."""

    name: str
    unit: JobPort

    @property
    def view(self) -> JobPort:
        return self.unit

    @property
    def commands(self) -> JobPort:
        return self.unit

    @property
    def called(self) -> str:
        """How answers name the job: ``snapshot``, or ``job NAME``."""
        return SNAPSHOT if self.name == SNAPSHOT else f"job {self.name}"

    @property
    def automatic_runs(self) -> str:
        """``snapshots``, or ``runs of job NAME``: what the schedule starts."""
        return "snapshots" if self.name == SNAPSHOT else f"runs of job {self.name}"

    @property
    def not_running(self) -> str:
        return "No snapshot is running" if self.name == SNAPSHOT else f"Job {self.name} is not running"

    def run_called(self, run_id: str) -> str:
        """``snapshot ID``, or ``run ID of job NAME``."""
        return f"snapshot {run_id}" if self.name == SNAPSHOT else f"run {run_id} of job {self.name}"


def job_of(request: web.Request) -> JobRef:
    """The job the request's path names: ``/api/jobs/{job}/...`` that job, any other path the default job; a
    404 if the service has no job of that name."""
    app, name = request.app, request.match_info.get("job")
    return _job(app, name if name is not None else app[SERVED].default_job)


def job_named(request: web.Request, name: str) -> JobRef:
    """The job called ``name``; a 404 naming it if the service has none."""
    return _job(request.app, name)


def _job(app: web.Application, name: str) -> JobRef:
    try:
        unit = app[SERVED].job(name)
    except KeyError:
        raise ApiError(404, f"no job named {name[:80]!r}") from None
    refs = app[JOB_REFS]
    ref = refs.get(name)
    if ref is None or ref.unit is not unit:  # (a reload may replace a job's unit)
        ref = refs[name] = JobRef(name, unit)
    return ref


def run_of_job(stored: StoredRun | None, job: JobRef, run_id: str) -> StoredRun:
    """``stored`` (the run ``run_id`` as the history has it), if it is a run of ``job``; else a 404."""
    if stored is None:
        raise ApiError(404, f"No run {run_id[:80]!r} in the history")
    if stored.job != job.name:
        raise ApiError(404, f"Run {run_id[:80]!r} is a run of job {stored.job!r}, not of {job.name!r}")
    return stored


def add_job_route(app: web.Application, method: Literal["GET", "POST"], suffix: str, handler: Handler) -> None:
    """``handler`` at ``/api/snapshot{suffix}`` and at ``/api/jobs/{job}{suffix}`` (a GET answers HEAD too)."""
    for prefix in (DEFAULT_PREFIX, JOB_PREFIX):
        if method == "GET":
            app.router.add_get(prefix + suffix, handler)
        else:
            app.router.add_post(prefix + suffix, handler)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/jobs", jobs)
    app[JOBS_TAIL] = {}
    app[JOB_REFS] = {}


async def jobs(request: web.Request) -> web.Response:
    """``{"jobs": [status document, ...], "defaultJob": name}``: each document as ``/status`` answers it."""
    served = request.app[SERVED]
    tails, name = request.app[JOBS_TAIL], served.default_job
    if (tail := tails.get(name)) is None:
        tail = tails[name] = b'], "defaultJob": ' + json.dumps(name).encode() + b"}"
    body = served.jobs_status_json(b'{"jobs": [', tail)
    return web.Response(body=body, headers=JSON_HEADERS)


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
"""The ``Content-Type`` of ``web.json_response``."""

JOB_REFS = web.AppKey("job_refs", dict[str, JobRef])
"""Each job as requests find it, made once per unit (only of jobs the service has)."""
JOBS_TAIL = web.AppKey("jobs_tail", dict[str, bytes])
"""The end of ``GET /api/jobs``'s answer, naming the default job."""
