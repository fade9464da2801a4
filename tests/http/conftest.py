"""A service of several jobs for the HTTP tests: a real jobs file, read as ``serve --jobs`` reads it (and again on a
reload), on the fake clock; the default job (``main``, not named ``snapshot``) runs the scripted job, the others
a real ``true`` (only tests of the process tier trigger them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.http.app import create_app
from orchestrator.jobsfile import load_jobs_file, parse_jobs
from orchestrator.service import Orchestrator
from tests.fakes import Client, ScriptedJob, make_settings

JOBS_FILE = """
default-job = "main"

[jobs.main]
command = "true"
interval = 30

[jobs.nightly]
command = "true"
cron = "0 3 * * *"
timezone = "UTC"

[jobs.report]
command = "true"
"""
"""Three jobs: the default job on an interval (its start-up run is the scripted job's), a cron job (first due at
03:00, long after any test's clock), and a job that runs on triggers only."""
JOBS = ["main", "nightly", "report"]


def several_jobs(
    root: Path, clock: FakeClock, job: ScriptedJob, text: str = JOBS_FILE, **settings: Any
) -> tuple[Orchestrator, Path]:
    """A service (not started) of the jobs ``text`` says, and its jobs file, in ``root``; ``settings`` as for
    ``make_settings`` (``token=...``)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "jobs.toml"
    path.write_text(text)
    service = Orchestrator(
        make_settings(root, **settings),
        clock=clock,
        job=job,
        jobs=parse_jobs(text, path),
        load_jobs=lambda: load_jobs_file(path),
    )
    return service, path


@pytest.fixture
def jobs_service(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, job: ScriptedJob) -> Orchestrator:
    """The service of :data:`JOBS_FILE`, not started; the ``service`` marker's settings apply (``token=...``)."""
    marker = request.node.get_closest_marker("service")
    settings = {k: v for k, v in (marker.kwargs if marker else {}).items() if k not in ("interval", "cooldown")}
    return several_jobs(tmp_path, clock, job, **settings)[0]


@pytest.fixture
def jobs_path(jobs_service: Orchestrator, tmp_path: Path) -> Path:
    """The jobs file of ``jobs_service``: rewrite it, then reload."""
    return tmp_path / "jobs.toml"


@pytest.fixture
async def jobs_client(
    jobs_service: Orchestrator, aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]]
) -> Client:
    """``jobs_service`` served over real HTTP; the app starts it, and stops it when the test ends."""
    return await aiohttp_client(create_app(jobs_service))
