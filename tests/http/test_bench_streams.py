"""bench/streams.py runs end to end at a tiny size: the service and the bare aiohttp app each hold a few streams,
and the table prints both rows and their ratio."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import PYTHON, REPO

pytestmark = pytest.mark.process


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
@pytest.mark.timeout(120)
def test_the_streams_benchmark_runs_at_a_tiny_size() -> None:
    done = subprocess.run(
        [PYTHON, "bench/streams.py", "--streams", "20", "--tries", "2"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "### One progress change -> the last of N event streams" in out, out
    assert "| service | 20 | 20 | 0 |" in out, out
    assert "| bare aiohttp app | 20 | 20 | 0 |" in out, out
    assert "| **service / reference** |" in out, out
