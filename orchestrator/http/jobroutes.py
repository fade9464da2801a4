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
    name = request.match_info.get("job")
    return job_named(request, name if name is not None else request.app[SERVED].default_job)


def job_named(request: web.Request, name: str) -> JobRef:
    """The job called ``name``; a 404 naming it if the service has none."""
    try:
        return JobRef(name, request.app[SERVED].job(name))
    except KeyError:
        raise ApiError(404, f"no job named {name[:80]!r}") from None


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
    app[LAST_JOBS] = [b"", b""]


async def jobs(request: web.Request) -> web.Response:
    """``{"jobs": [status document, ...], "defaultJob": name}``: each document as ``/status`` answers it."""
    served = request.app[SERVED]
    documents = served.jobs_status_json()
    last = request.app[LAST_JOBS]
    if last[0] is not documents:  # the same text (within the same millisecond): the same answer
        last[:] = documents, b"".join((b'{"jobs": ', documents, _tail(served.default_job)))
    return web.Response(body=last[1], headers=JSON_HEADERS)


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
"""The ``Content-Type`` of ``web.json_response``."""


def _tail(default_job: str) -> bytes:
    return b', "defaultJob": ' + json.dumps(default_job).encode() + b"}"


LAST_JOBS = web.AppKey("last_jobs", list[bytes])
"""The array ``GET /api/jobs`` last answered and its answer."""
