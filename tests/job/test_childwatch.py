"""A job's exit is heard through a pidfd on the loop while the service runs; the watcher of before comes back."""

from __future__ import annotations

import asyncio
import sys

import pytest

from orchestrator.job.childwatch import ChildWatch, _pidfd_works

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(
        sys.version_info >= (3, 12) or not _pidfd_works(), reason="Python takes the pidfd by itself, or there is none"
    ),
]


async def test_a_child_is_watched_through_a_pidfd_and_the_watcher_of_before_comes_back() -> None:
    policy = asyncio.get_event_loop_policy()
    before = getattr(policy, "_watcher", None)
    children = ChildWatch()
    children.start()
    try:
        assert isinstance(getattr(policy, "_watcher", None), asyncio.PidfdChildWatcher)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
        assert await asyncio.wait_for(proc.wait(), 10) == 3
    finally:
        children.close()
    assert getattr(policy, "_watcher", None) is before
    children.close()  # a second close is a no-op
