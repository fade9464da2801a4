"""bench/job_output.py runs end to end at a tiny size: the job writing a file itself, under the runner in
process, and under a real service, each row printed with its ratio to the first."""

from __future__ import annotations

import pytest

from tests.support import REPO, run_bench

pytestmark = pytest.mark.process


@pytest.mark.timeout(120)
def test_the_job_output_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench("job_output.py", "--lines", "2000", "--tries", "1", timeout=100)
    assert "| mode | job's own s, median |" in out, out
    for mode in ("file", "file, buffered", "runner", "service", "service, followed"):
        assert f"| {mode} |" in out, out
    assert f"- the service ran: {REPO}" in out, out
