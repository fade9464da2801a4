"""bench/bar_paint.py runs end to end at a tiny size: one round, pages of one and two bars, each sharing one
stream (the script exits 1 otherwise)."""

from __future__ import annotations

import pytest

from tests.support import run_bench
from tests.web.browsing import CHROMIUM, unavailable

pytestmark = [pytest.mark.browser, pytest.mark.process]


@pytest.mark.timeout(240)
def test_the_bar_paint_benchmark_runs_at_a_tiny_size() -> None:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    out = run_bench("bar_paint.py", "--rounds", "1", "--warmup", "0", "--bars", "1,2", timeout=200)
    assert "## First paint of `<snapshot-bar>`" in out, out
    assert "| cold |" in out and "| warm |" in out, out
    assert "| `/api/events` | 200 | no |" in out, out  # the one stream of every job
    assert "| 1 | 1 |" in out and "| 2 | 1 |" in out, out  # one stream for one bar, and for two
