"""How long ``GET /metrics`` takes, and whether it depends on the size of the run history (it should not).

    python bench/metrics.py [--runs 10000] [--tries 300]

Starts two real service processes, one on an empty history and one on a history of ``--runs`` runs (one in
ten failed, as in bench/history.py), scrapes ``/metrics`` of each in turn over HTTP, ``--tries`` times each, and
prints the times in milliseconds. Then times the one thing the metrics read from the history, once at start:
the last success, when the newest run completed (the usual case) and when every recorded run failed (the
whole history is read).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.history import make_run, timed
from orchestrator.ops.metrics import last_success
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from tests.support import start_service


def fill(data_dir: Path, runs: int, failed: Callable[[int], bool]) -> SqliteHistory:
    data_dir.mkdir(parents=True, exist_ok=True)
    history = SqliteHistory(data_dir / HISTORY_FILE_NAME)
    for n in range(runs):
        history.record(make_run(n, failed=failed(n)))
    return history


def scrape_both(roots: tuple[Path, Path], tries: int) -> tuple[list[float], list[float], int, int]:
    """Both services up at once, scraped in turn: the machine's load (2 shared cores) weighs on both alike."""
    command = shlex.join([sys.executable, "-c", "pass"])
    services = [start_service(root, "--command", command, "--interval", "600") for root in roots]
    try:
        for service in services:
            service.wait_ready()

        def scrape(url: str) -> bytes:
            with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
                return bytes(response.read())

        sizes = [len(scrape(service.url)) for service in services]
        samples: list[list[float]] = [[], []]
        for _ in range(tries):
            for i, service in enumerate(services):
                samples[i] += timed(1, lambda url=service.url: scrape(url))
        return samples[0], samples[1], sizes[0], sizes[1]
    finally:
        for service in services:
            service.stop()


def row(name: str, samples: list[float]) -> str:
    if len(samples) < 100:  # too few for tail quantiles to mean anything
        return f"{name:46} {statistics.median(samples):8.2f} {'':8} {'':8} {max(samples):8.2f}"
    q = statistics.quantiles(samples, n=100)
    return f"{name:46} {statistics.median(samples):8.2f} {q[89]:8.2f} {q[98]:8.2f} {max(samples):8.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        start = time.perf_counter()
        usual = fill(root / "full" / "data", args.runs, lambda n: n % 10 == 0)
        filled = time.perf_counter() - start
        empty, full, empty_size, full_size = scrape_both((root / "empty", root / "full"), args.tries)
        failing = fill(root / "failing" / "data", args.runs, lambda n: True)
        restore_usual = timed(20, lambda: last_success(None, usual))
        restore_failing = timed(5, lambda: last_success(None, failing))
    print(f"history of {args.runs} runs recorded in {filled:.1f} s; /metrics is {empty_size} / {full_size} bytes")
    print(f"{'call':46} {'median':>8} {'p90':>8} {'p99':>8} {'worst':>8}  (ms)")
    print(row(f"GET /metrics, empty history ({args.tries})", empty))
    print(row(f"GET /metrics, {args.runs} runs ({args.tries})", full))
    print(row("last success at start: newest completed (20)", restore_usual))
    print(row(f"last success at start: {args.runs} failed (5)", restore_failing))


if __name__ == "__main__":
    main()
