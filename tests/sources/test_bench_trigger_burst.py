"""bench/trigger_burst.py runs end to end at a tiny size: a burst of each kind, each figure printed beside its
reference (the floor of a plain loop, the idle service's /health), every file counted once."""

from __future__ import annotations

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process


@pytest.mark.timeout(180)
def test_the_trigger_burst_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench("trigger_burst.py", "--files", "60", "--writers", "1", "2", "--idle-seconds", "0.2", timeout=160)
    assert "### 60 trigger files dropped at once" in out, out
    for how in ("create", "rename"):
        for who in ("1 writer", "2 writers"):
            assert f"| 60 files taken after the last write ({how}, {who}) |" in out, out
            assert f"| /health p99 during the burst ({how}, {who}) |" in out, out
    assert "(idle service)" in out and "floor: list+fsync+remove" in out, out
    assert "MISMATCH" not in out, out
