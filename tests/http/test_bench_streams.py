"""bench/streams.py runs end to end at a tiny size: the service and the bare aiohttp app each hold a few streams,
and the table prints both rows and their ratio."""

from __future__ import annotations

import pytest

from tests.support import run_bench

pytestmark = pytest.mark.process


@pytest.mark.timeout(120)
def test_the_streams_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench("streams.py", "--streams", "20", "--tries", "2", timeout=100)
    assert "### One progress change -> the last of N event streams" in out, out
    assert "| service | 20 | 20 | 0 |" in out, out
    assert "| bare aiohttp app | 20 | 20 | 0 |" in out, out
    assert "| **service / reference** |" in out, out
