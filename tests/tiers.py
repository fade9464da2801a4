"""The test tiers. ``process``: the test starts real processes (the service, a job, the command line);
``browser``: it drives Chromium. ``pytest -m "not process and not browser"`` is the fast tier, and it stays
fast by construction: a test outside both tiers that starts a process fails, naming the marker it needs.

``SNAPSHOT_TIERS_RECORD=FILE`` lists every test that starts a process in ``FILE`` instead of failing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Generator, Iterator
from typing import Any

import pytest

SLOW_TIERS = ("process", "browser")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "process: starts real processes (the service, a job, the command line)")


@contextlib.contextmanager
def _no_processes(item: pytest.Item) -> Iterator[None]:
    record = os.environ.get("SNAPSHOT_TIERS_RECORD")
    in_slow_tier = any(item.get_closest_marker(name) for name in SLOW_TIERS)
    if in_slow_tier and not record:
        yield
        return
    original = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_child(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        if record:
            with open(record, "a", encoding="utf-8") as out:
                out.write(item.nodeid + "\n")
        else:
            raise AssertionError(f"{item.nodeid} starts a process: mark it @pytest.mark.process")
        return original(self, *args, **kwargs)

    subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
    try:
        yield
    finally:
        subprocess.Popen._execute_child = original  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _no_processes(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _no_processes(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    with _no_processes(item):
        return (yield)
