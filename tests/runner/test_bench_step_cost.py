"""bench/step_cost.py runs end to end at a tiny size: a real service, a job reporting details, and the plain
reference, with every figure printed."""

from __future__ import annotations

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process


@pytest.mark.timeout(120)
def test_the_step_cost_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench("step_cost.py", "--rate", "500", "--seconds", "0.4", "--tries", "1", timeout=100)
    assert "| plain | 1 |" in out and "| progress | 1 |" in out, out
    assert "extra CPU per detail over a plain line" in out, out
    progress_row = next(line for line in out.splitlines() if line.startswith("| progress | 1 |"))
    assert progress_row.split("|")[5].strip() == "200", "every line of the job is in its run log"
