from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.clock import FakeClock
from tests.fakes import T0, ScriptedJob
from tests.support import ServiceProcess, start_service

pytest_plugins = ["tests.tiers"]


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock of the logic tests (tests/fakes.py), at ``T0``."""
    return FakeClock(T0)


@pytest.fixture
def job() -> ScriptedJob:
    """A scripted job: each run waits until the test finishes it."""
    return ScriptedJob()


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
