"""Fixtures shared by the fault suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.faults.harness import LogFollower
from tests.support import ServiceProcess


@pytest.fixture
async def follower(service: ServiceProcess) -> AsyncIterator[LogFollower]:
    """Follows the log of the module's ``service`` fixture: waits for and counts its lines."""
    follower = LogFollower(service)
    yield follower
    follower.close()
