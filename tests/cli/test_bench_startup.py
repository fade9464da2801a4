"""bench/startup.py runs end to end at a tiny size: one try of each start (a fresh data folder, one with history,
the bare aiohttp app, and the same service again as the one "before"), a short idle window with the shape's
floor beside them; both tables are printed with their references and ratios."""

from __future__ import annotations

import pytest

from tests.support import REPO, run_bench

pytestmark = pytest.mark.process


@pytest.mark.timeout(120)
def test_the_startup_benchmark_runs_at_a_tiny_size() -> None:
    out = run_bench(
        *("startup.py", "--rounds", "1", "--history", "3", "--idle-seconds", "1"),
        *("--settle", "0.2", "--before", str(REPO)),
        timeout=100,
    )
    for heading in ("### 1. Spawn -> `/health` 200", "### 2. Idle: 1 s"):
        assert heading in out, out
    for row in (
        "| service, fresh data folder (its first run starts) |",
        "| service, data folder with history |",
        "| bare aiohttp app (reference) |",
        "| service before, data folder with history |",
        "| **fresh / bare** |",
        "| **history / bare** |",
        "| **history / history-before** |",
        "| bare app + watchdog observer + the history read (the shape's floor) |",
        "| **floor / bare** |",
        "| **history / floor** |",
    ):
        assert row in out, out
    assert f"The service's code: `{REPO / 'orchestrator' / '__init__.py'}`" in out, out
