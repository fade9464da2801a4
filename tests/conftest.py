"""Fixtures every tier shares: the fake clock and the scripted job; the test's in-process service (one
fixture, set by the ``service`` marker), its factory for a second one or a later one, and its HTTP client;
and real service processes for the process tier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.http.app import create_app
from orchestrator.service import Orchestrator
from tests.fakes import T0, Client, ScriptedJob, Services, end_startup
from tests.support import ServiceProcess, start_service

pytest_plugins = ["tests.tiers"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "service(interval=30, cooldown=5, after_startup=False, **settings): the settings of the test's in-process"
        " service (the `service`, `services` and `client` fixtures); `settings` name fields of Settings' sections",
    )


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock of the logic tests (tests/fakes.py), at ``T0``."""
    return FakeClock(T0)


@pytest.fixture
def job() -> ScriptedJob:
    """A scripted job: each run waits until the test finishes it."""
    return ScriptedJob()


def _marked(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The keywords of the closest ``service`` marker (the test's own, else its class's or module's)."""
    marker = request.node.get_closest_marker("service")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
async def services(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, job: ScriptedJob
) -> AsyncIterator[Services]:
    """Builds in-process services for tests that need a second one or to start one later; each is built in
    ``tmp_path`` on ``clock`` and ``job`` with the ``service`` marker's settings unless told otherwise, and
    every one started here is stopped when the test ends."""
    settings = _marked(request)
    settings.pop("after_startup", None)
    factory = Services(tmp_path, clock, job, **settings)
    yield factory
    await factory.stop_all()


@pytest.fixture
def unstarted_service(services: Services) -> Orchestrator:
    """The test's in-process service, built from the ``service`` marker and not started yet."""
    return services.build()


@pytest.fixture
async def service(
    request: pytest.FixtureRequest, services: Services, unstarted_service: Orchestrator, job: ScriptedJob
) -> Orchestrator:
    """The test's in-process service (``tmp_path``, ``clock``, ``job``), started, and stopped when the test
    ends. Its settings come from the ``service`` marker: ``interval`` and ``cooldown`` in minutes (30 and 5
    by default), any field of the settings by name, and ``after_startup=True`` to begin once the start-up run
    has ended. A test that also takes ``client`` gets the same service, which the app starts and stops."""
    if "client" in request.fixturenames:
        assert not _marked(request).get("after_startup"), "after_startup is for a service the test starts"
        return unstarted_service
    await services.started(unstarted_service)
    if _marked(request).get("after_startup"):
        await end_startup(unstarted_service, job)
    return unstarted_service


@pytest.fixture
async def client(
    unstarted_service: Orchestrator, aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]]
) -> Client:
    """The test's in-process service (as ``service``) served over real HTTP by aiohttp's test server, whose
    app starts the service and stops it when the test ends."""
    return await aiohttp_client(create_app(unstarted_service))


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Any]:
    """Start real service processes in ``tmp_path``; all are stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, root: Path | None = None) -> ServiceProcess:
        service = start_service(root or tmp_path, *args, env=env)
        started.append(service)
        service.wait_ready()
        return service

    yield start
    for service in started:
        if service.proc.poll() is None:
            service.stop()
