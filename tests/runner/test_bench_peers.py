"""bench/peers.py runs end to end at a tiny size: ours, watchmedo, entr, a syncing watchdog handler and the
asyncio floor each touched, the ratios printed, and ours (and the floor) ran exactly once per touch."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process

NO_ENTR = shutil.which("entr") is None and os.environ.get("CI") != "true"  # .ci/run installs it


@pytest.mark.skipif(NO_ENTR, reason="entr is not installed")
@pytest.mark.timeout(120)
def test_the_peers_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench("peers.py", "--tries", "2", "--warmup", "1", "--quiet-ms", "50", timeout=100)
    for heading in ("### touch -> the job's first instruction", "### ratios (ours / peer)", "### run counts"):
        assert heading in out, out
    tools = ("ours", "watchmedo", "entr", "watchdog+fsync", "asyncio+fsync")
    rows = [f"| {tool} | 2 |" for tool in tools] + [f"| ours / {peer} |" for peer in tools[1:]]
    for row in rows:
        assert row in out, out
    assert "**exactly one run per touch**" in out, out
    assert "- asyncio+fsync: 2 runs for 2 touches (on the file's close)" in out, out
