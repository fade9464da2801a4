"""bench/eta_steps.py runs end to end at a tiny size: two earlier runs, one trial, the long step at the fifth of
fifteen; its table is printed and the estimate with steps came from the steps at every point (the script exits 1
otherwise)."""

from __future__ import annotations

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process


def test_the_eta_steps_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench("eta_steps.py", "--duration", "60", "--trials", "1", "--earlier", "2", "--long-at", "5", timeout=50)
    assert "## ETA from steps (`bench/eta_steps.py`)" in out, out
    rows = [line for line in out.splitlines() if line.startswith("| 5 of 15 |")]
    assert [row.split(" | ")[1] for row in rows] == ["25%", "50%", "75%"], out
    assert all(row.split(" | ")[5] == "steps" for row in rows), out
