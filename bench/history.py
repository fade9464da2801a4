"""How long the run history takes to answer with 10,000 runs recorded.

    python bench/history.py [--runs 10000] [--tries 200]

Records ``--runs`` runs into a fresh ``runs.sqlite3`` in a temp folder (the way the service does: one
connection per call), then times the calls the API makes: the first page, a page deep in the history (by
cursor), one run by id, and a count; and finally a prune down to 100 runs. Prints a table in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.store.history import SqliteHistory

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_run(n: int, *, failed: bool | None = None) -> RunRecord:
    """The ``n``-th run, 30 minutes after the one before; every tenth fails unless ``failed`` says."""
    failed = n % 10 == 0 if failed is None else failed
    started = T0 + timedelta(minutes=30 * n)
    return RunRecord(
        run_id=f"{started:%Y%m%dT%H%M%SZ}-{n:06x}",
        triggers=(Trigger(Source.TIMER, started, "scheduled"),),
        started_at=started,
        status=RunStatus.ERROR if failed else RunStatus.COMPLETED,
        finished_at=started + timedelta(minutes=20),
        exit_code=1 if failed else 0,
        error="exited with code 1: rate limited" if failed else None,
        step="Snapshot written",
    )


def timed(tries: int, call: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(tries):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        history = SqliteHistory(Path(folder) / "runs.sqlite3")
        runs = [make_run(n) for n in range(args.runs)]
        start = time.perf_counter()
        for run in runs:
            history.record(run)
        fill = time.perf_counter() - start
        size = (Path(folder) / "runs.sqlite3").stat().st_size
        deep = history.page(limit=50)
        for _ in range(args.runs // 100):  # halfway down, by following cursors
            if deep.next_cursor is None:
                break
            deep = history.page(limit=50, cursor=deep.next_cursor)
        cursor = deep.next_cursor
        middle = runs[args.runs // 2].run_id
        rows = [
            ("first page (limit 50)", timed(args.tries, lambda: history.page(limit=50))),
            ("a page halfway down (cursor)", timed(args.tries, lambda: history.page(limit=50, cursor=cursor))),
            ("one run by id", timed(args.tries, lambda: history.get(middle))),
            ("count", timed(args.tries, history.count)),
            ("record one run (insert or update)", timed(args.tries, lambda: history.record(runs[-1]))),
        ]
        start = time.perf_counter()
        removed = history.prune(keep=100)
        prune = (time.perf_counter() - start) * 1000
    each = fill / args.runs * 1000
    print(f"{args.runs} runs recorded in {fill:.1f} s ({each:.2f} ms each), file {size / 1e6:.1f} MB")
    print(f"{'call':36} {'median':>8} {'p90':>8} {'p99':>8} {'worst':>8}  (ms, {args.tries} tries)")
    for name, samples in rows:
        q = statistics.quantiles(samples, n=100)
        print(f"{name:36} {statistics.median(samples):8.2f} {q[89]:8.2f} {q[98]:8.2f} {max(samples):8.2f}")
    print(f"prune to 100 runs: {len(removed)} removed in {prune:.0f} ms")


if __name__ == "__main__":
    main()
