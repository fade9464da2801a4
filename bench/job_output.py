"""A job printing N lines: what the service's capture of its output costs, against the same job writing its
lines to a file itself, tried in turn in one run.

    python bench/job_output.py [--lines 200000] [--tries 5] [--code PATH] [--no-service]

The job is the same Python loop every time (one ``PROGRESS`` line every 10,000 lines, in the environment the
service gives a job: ``PYTHONUNBUFFERED=1``, so each line is a write of its own); it notes the wall clock at its
first line and after its last one. Modes:

``file``     the job's stdout redirected to a file by the shell (the reference), in the same environment;
``file, buffered``  the same without ``PYTHONUNBUFFERED`` (Python's own 8 KiB buffer): what that setting,
             which the service gives every job so that its lines and reports come as they are printed, costs
             the job itself (for information);
``runner``   run in this process by the service's own ``SubprocessJob``, its lines going to ``RunLogs`` as the
             runner wires them, progress reports parsed;
``service``  a real service process (``python -m orchestrator serve``): ``POST /api/snapshot/trigger``, then
             the run's log file polled until it holds the job's last line, then the run's record until finished;
``service, followed``  the same with one client reading the run's live log stream to its end meanwhile (as the
             page does).

Columns: the job's own time (its first line to its last: longer than ``file`` when its pipe was full), the time
from its first line until the log holds its last line (``file``: its own time; ``runner``: the job's result and
its log written), and that over the reference's own time. ``--code`` runs another copy of the package (the
"before" figure): it goes first on this process's path and on the service's ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

JOB = """
import os, sys, time
t0 = time.time()
write = sys.stdout.write
for i in range({lines}):
    if i % 10000 == 0:
        write(f"PROGRESS {{i * 100 // {lines}}} Printing lines\\n")
    write(f"line {{i}} of the job, a log line\\n")
sys.stdout.flush()
t1 = time.time()
with open(os.environ["BENCH_TIMES"], "w") as times:
    times.write(f"{{t0}} {{t1}}")
"""
LAST = "line {last} of the job, a log line"


def job_times(path: Path) -> tuple[float, float]:
    first, last = path.read_text().split()
    return float(first), float(last)


def by_file(script: str, folder: Path, unbuffered: str = "1") -> tuple[float, float]:
    times = folder / "times"
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered, "BENCH_TIMES": os.fspath(times), "BENCH_JOB": script}
    out = folder / "out.txt"
    subprocess.run(["sh", "-c", f'exec "{sys.executable}" -c "$BENCH_JOB" > "{out}"'], env=env, check=True)
    first, last = job_times(times)
    return last - first, last - first


async def by_runner(script: str, folder: Path, lines: int) -> tuple[float, float]:
    from datetime import UTC, datetime

    from orchestrator.core.clock import SystemClock
    from orchestrator.core.events import RunStatus, Source, Trigger
    from orchestrator.core.records import RunRecord
    from orchestrator.job.protocol import RunContext
    from orchestrator.job.subprocessjob import SubprocessJob
    from orchestrator.store.runlogs import RunLogs

    times = folder / "times"
    logs = RunLogs(folder, SystemClock())
    run_id = "20260101T000000Z-bench0"
    reports: list[object] = []
    ctx = RunContext(run_id, Source.HTTP, "", folder / "progress.json", logs.open(run_id))
    job = SubprocessJob([sys.executable, "-c", script], extra_env={"BENCH_TIMES": os.fspath(times)})
    result = await job.run(ctx, reports.append)
    now = datetime.now(UTC)
    logs.close(RunRecord(run_id, (Trigger(Source.HTTP, now),), now, status=RunStatus.COMPLETED))
    await logs.stop()
    held = time.time()
    assert result.status is RunStatus.COMPLETED, result
    assert len(reports) == len(range(0, lines, 10000)), len(reports)
    assert LAST.format(last=lines - 1) in tail(folder / "logs" / f"{run_id}.log")
    first, last = job_times(times)
    return last - first, held - first


def tail(path: Path) -> str:
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 200))
            return file.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def follow_log(url: str, last_line: str) -> None:
    """Read a run's live log stream to its end (as the page does); it must have carried the job's last line."""
    seen = b""
    with urllib.request.urlopen(url, timeout=60) as stream:
        while chunk := stream.read1(65536):
            seen = seen[-65536:] + chunk
            if b"event: end" in seen:
                break
    assert last_line.encode() in seen and b"event: end" in seen, seen[-300:]


class Service:
    """One service process for every try; each try triggers one run."""

    def __init__(self, script: str, folder: Path, code: Path | None) -> None:
        from bench.latency import seed_state
        from tests.support import job_command, start_service

        seed_state(folder / "data")
        self.times = folder / "times"
        env = {"BENCH_TIMES": os.fspath(self.times)}
        if code is not None:
            env["PYTHONPATH"] = os.fspath(code)
        probe = [sys.executable, "-c", "import orchestrator; print(orchestrator.__file__)"]
        self.code = subprocess.run(
            probe, env={**os.environ, **env}, cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        self.service = start_service(folder, "--command", job_command(script), "--interval", "100000", env=env)
        self.service.wait_ready()

    def once(self, lines: int, follow: bool = False) -> tuple[float, float]:
        self.times.unlink(missing_ok=True)
        last_line = LAST.format(last=lines - 1)
        service = self.service
        service.post_json("/api/snapshot/trigger", {"reason": "bench"})
        run_id = None
        while run_id is None:
            current = service.get_json("/api/snapshot/status").get("currentRun")
            run_id = current and current.get("runId")
        follower = None
        if follow:
            url = f"{service.url}/api/snapshot/runs/{run_id}/log/stream"
            follower = threading.Thread(target=follow_log, args=(url, last_line), daemon=True)
            follower.start()
        log_file = service.data_dir / "logs" / f"{run_id}.log"
        while not self.times.exists():
            time.sleep(0.005)
        while last_line not in tail(log_file):
            time.sleep(0.001)
        held = time.time()
        while (last_run := service.get_json("/api/snapshot/status").get("lastRun") or {}).get("runId") != run_id:
            time.sleep(0.02)
        assert last_run.get("status") == "completed", last_run
        if follower is not None:
            follower.join(60)
            assert not follower.is_alive(), "the log stream ended"
        first, last = job_times(self.times)
        return last - first, held - first

    def stop(self) -> None:
        self.service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--code", type=Path, help="the package's folder to measure (default: this checkout)")
    parser.add_argument("--no-service", action="store_true", help="leave out the real service process")
    args = parser.parse_args()
    code = args.code.resolve() if args.code else None
    sys.path[:0] = [os.fspath(code)] if code else []
    sys.path.insert(1 if code else 0, os.fspath(REPO))
    import orchestrator

    script = JOB.format(lines=args.lines)
    began = time.monotonic()
    modes = ["file", "file, buffered", "runner"] + ([] if args.no_service else ["service", "service, followed"])
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        service = None if args.no_service else Service(script, root / "service", code)
        try:
            for n in range(args.tries):
                for mode in modes:
                    folder = root / f"{mode.replace(', ', '-')}{n}"
                    folder.mkdir()
                    if mode == "file":
                        results[mode].append(by_file(script, folder))
                    elif mode == "file, buffered":
                        results[mode].append(by_file(script, folder, unbuffered=""))
                    elif mode == "runner":
                        results[mode].append(asyncio.run(by_runner(script, folder, args.lines)))
                    elif service is not None:
                        results[mode].append(service.once(args.lines, follow=mode == "service, followed"))
        finally:
            if service is not None:
                service.stop()
    print(f"Command: `python bench/job_output.py {' '.join(sys.argv[1:])}` (took {time.monotonic() - began:.0f} s)\n")
    print(
        f"- {args.lines:,} lines, {args.tries} tries of each mode in turn; nproc {os.cpu_count()}; "
        f"python {platform.python_version()}; load average {' / '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(f"- package: {Path(orchestrator.__file__).parent.parent}")
    if service is not None:
        print(f"- the service ran: {Path(service.code).parent.parent}")
    print()
    reference = statistics.median(own for own, _ in results["file"])
    print("| mode | job's own s, median | best | first line -> log holds the last, median | best | x file |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, rows in results.items():
        own = [row[0] for row in rows]
        held = [row[1] for row in rows]
        ratio = statistics.median(held) / reference
        print(
            f"| {mode} | {statistics.median(own):.3f} | {min(own):.3f} | {statistics.median(held):.3f} | "
            f"{min(held):.3f} | **{ratio:.2f}x** |"
        )


if __name__ == "__main__":
    main()
