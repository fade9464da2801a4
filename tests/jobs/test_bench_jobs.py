"""bench/jobs.py runs end to end at a tiny size: three jobs against one, one round of starts and reloads, a short
idle window, two jobs running under the status probes; every section is printed with its reference."""

from __future__ import annotations

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process


@pytest.mark.timeout(180)
def test_the_jobs_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench(
        "jobs.py",
        "--jobs",
        "3",
        "--rounds",
        "1",
        "--idle-seconds",
        "2",
        "--settle",
        "0.5",
        "--running",
        "2",
        "--probes",
        "3",
        timeout=160,
    )
    for heading in ("### 1. Start", "### 2. Reload with 3 jobs", "### 3. Idle", "### 4. Status of every job"):
        assert heading in out, out
    assert "| **3 jobs / 1 job** |" in out, out
    edited = next(line for line in out.splitlines() if line.startswith("| edited |"))
    assert "added job003; removed job001; changed job000; 1 unchanged" in edited, out
    assert "| nothing changed (reference) |" in out and "3 unchanged" in out, out
    assert "| 2 jobs running |" in out, out
