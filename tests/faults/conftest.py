"""Fixtures shared by the fault suite."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.crashkit import processes_of_service
from tests.faults.harness import LogFollower
from tests.support import ServiceProcess


@pytest.fixture
async def follower(service: ServiceProcess) -> AsyncIterator[LogFollower]:
    """Follows the log of the module's ``service`` fixture: waits for and counts its lines."""
    follower = LogFollower(service)
    yield follower
    follower.close()


@pytest.fixture
def reap() -> Iterator[Callable[[Path], None]]:
    """At the end, whatever the outcome, no job of the test is left running on the machine."""
    folders: list[Path] = []
    yield folders.append
    for data_dir in folders:
        for pid in processes_of_service(data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
