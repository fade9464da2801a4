"""What a run's log costs a chatty job: a job printing N lines, run by the service's own
``SubprocessJob``, with its lines going to a run log and with them going nowhere.

    python bench/runlog.py [--lines 200000] [--tries 3]

Prints, for each mode, the best and median wall time from start to the job's end and its last line on disk,
and for the log: the batches written (open, append, close), the most bytes that waited in memory, the file size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.clock import SystemClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.job.protocol import RunContext, ignore_output
from orchestrator.job.subprocessjob import SubprocessJob
from orchestrator.store.runlogs import RunLogs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def once(lines: int, with_log: bool) -> tuple[float, int, int, int]:
    script = f"import sys\nfor i in range({lines}): sys.stdout.write(f'line {{i}} of the job, a log line\\n')\n"
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        logs = RunLogs(data, SystemClock())
        run_id = "20260101T000000Z-bench0"
        output = logs.open(run_id) if with_log else ignore_output
        ctx = RunContext(run_id, Source.HTTP, "", data / "progress.json", output)
        start = time.perf_counter()
        result = await SubprocessJob([sys.executable, "-c", script]).run(ctx, lambda parsed: None)
        if with_log:
            logs.close(RunRecord(run_id, (Trigger(Source.HTTP, T0),), T0, status=RunStatus.COMPLETED))
        await logs.stop()
        elapsed = time.perf_counter() - start
        assert result.status is RunStatus.COMPLETED
        size = (data / "logs" / f"{run_id}.log").stat().st_size if with_log else 0
        return elapsed, logs.writes, logs.peak_pending, size


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.lines:,} lines, {args.tries} tries each, alternating\n")
    results: dict[bool, list[tuple[float, int, int, int]]] = {False: [], True: []}
    for _ in range(args.tries):
        for with_log in (False, True):
            results[with_log].append(await once(args.lines, with_log))
    print("| mode | best s | median s | batches written | peak in memory | log size |")
    print("|---|---:|---:|---:|---:|---:|")
    for with_log, rows in results.items():
        times = [row[0] for row in rows]
        writes, peak, size = rows[-1][1:]
        mode = "run log" if with_log else "no log"
        print(
            f"| {mode} | {min(times):.2f} | {statistics.median(times):.2f} | {writes if with_log else '-'} | "
            f"{f'{peak // 1024} KiB' if with_log else '-'} | {f'{size / 1e6:.1f} MB' if with_log else '-'} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
