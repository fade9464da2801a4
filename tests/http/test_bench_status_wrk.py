"""bench/status_wrk.py runs end to end at a tiny size: one short wrk round of each side, for one job's status and
for every job's of three; both tables are printed with the reference and the ratio."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process


NO_WRK = shutil.which("wrk") is None and os.environ.get("CI") != "true"  # .ci/run installs it


@pytest.mark.skipif(NO_WRK, reason="wrk is not installed")
@pytest.mark.timeout(120)
def test_the_status_wrk_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench(
        "status_wrk.py", "--seconds", "1", "--rounds", "1", "--jobs", "3", "--connections", "4", timeout=100
    )
    for heading in ("### 1. One job's status", "### 2. Every job's status, 3 jobs"):
        assert heading in out, out
    assert out.count("| bare aiohttp, same bytes (reference) |") == 2, out
    assert out.count("| **ours / bare** |") == 2, out
    assert out.count("| bare aiohttp + the service's guard and headers |") == 2, out
    assert out.count("| bare + guard / bare (the protections alone) |") == 2, out
    assert "`GET /api/snapshot/status`" in out and "`GET /api/jobs`" in out, out
