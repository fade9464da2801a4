"""What a step detail costs: a job reporting ``--rate`` details a second (the JSON form of ``PROGRESS``, 15 steps,
a detail and counts in each report) for ``--seconds``, under a real service process, side by side with the same
job printing plain lines of the same length at the same pace (the reference: what any line of output costs).

    python bench/step_cost.py [--rate 10000] [--seconds 5] [--tries 2]

For each mode, per run: the service's CPU time (user + system, from /proc, trigger to end), the lines the job
printed, the run log's bytes, the status events one SSE client received during the run, and the bytes of the
steps the history keeps for the run. Then the cost per report: the service's extra CPU per detail over a plain
line, and the bytes per detail. Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import free_port  # noqa: E402

JOB = r"""
import json, os, sys, time
reason = os.environ["SNAPSHOT_REASON"]
mode, seconds, rate = reason.split(":") if ":" in reason else ("", "0", "0")
seconds, rate = float(seconds), int(rate)
total = int(seconds * rate)
batch = max(1, rate // 100)  # a batch every 10 ms
out = sys.stdout
start = time.monotonic()
for i in range(0, total, batch):
    lines = []
    for n in range(i, min(i + batch, total)):
        step = n * 15 // total
        report = {"percent": round(100 * n / total, 2), "step": f"Fetching repo group {step + 1}",
                  "detail": f"GET /repos/octo/r{step}/pulls?page={n}", "done": n, "total": total}
        text = "PROGRESS " + json.dumps(report)
        lines.append(text if mode == "progress" else "x" * len(text))
    out.write("\n".join(lines) + "\n")
    out.flush()
    wait = start + (i + batch) / rate - time.monotonic()
    if wait > 0:
        time.sleep(wait)
"""


@dataclass(frozen=True)
class Outcome:
    cpu: float
    wall: float
    lines: int
    log_bytes: int
    events: int
    steps_bytes: int


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def whole_log(path: Path, lines: int) -> bytes:
    """The run's log once it holds every line (its last lines are written on a worker thread after the end)."""
    deadline = time.monotonic() + 30
    while (text := path.read_bytes() if path.exists() else b"").count(b"\n") < lines:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} holds fewer than {lines} lines")
        time.sleep(0.05)
    return text


def one_run(port: int, pid: int, data: Path, reason: str, lines: int) -> Outcome:
    stream = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    stream.request("GET", "/api/snapshot/events")
    events_answer = stream.getresponse()
    before, began = cpu_seconds(pid), time.perf_counter()
    trigger = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    trigger.request(
        "POST", "/api/snapshot/trigger", json.dumps({"reason": reason}), {"Content-Type": "application/json"}
    )
    assert trigger.getresponse().status == 202
    events, run_id, seen_running = 0, None, False
    while raw := events_answer.readline():
        if not raw.startswith(b"data:"):
            continue
        doc = json.loads(raw[5:])
        if "running" not in doc:
            continue
        events += 1
        if doc["running"]:
            seen_running, run_id = True, doc["currentRun"]["runId"]
        elif seen_running:
            break
    cpu, wall = cpu_seconds(pid) - before, time.perf_counter() - began
    stream.close()
    db = sqlite3.connect(data / "runs.sqlite3")
    row = db.execute("SELECT length(steps) FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    db.close()
    text = whole_log(data / "logs" / f"{run_id}.log", lines)
    return Outcome(cpu, wall, text.count(b"\n"), len(text), events, int(row[0] or 0) if row else 0)


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/snapshot/status", timeout=5) as answer:
                if not json.load(answer)["running"]:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the service did not start")


def measure(args: argparse.Namespace) -> dict[str, list[Outcome]]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "job.py").write_text(JOB)
        port = free_port()
        service = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port), "--data-dir", str(root / "data"),
             "--triggers-dir", str(root / "triggers"), "--interval", "100000", "--cooldown", "0",
             "--command", f"{sys.executable} {root / 'job.py'}"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(port)
            results: dict[str, list[Outcome]] = {"plain": [], "progress": []}
            lines = int(args.seconds * args.rate)
            for _ in range(args.tries):
                for mode in ("plain", "progress"):
                    reason = f"{mode}:{args.seconds}:{args.rate}"
                    results[mode].append(one_run(port, service.pid, root / "data", reason, lines))
            return results
        finally:
            service.terminate()
            service.wait(timeout=30)


def report(args: argparse.Namespace, results: dict[str, list[Outcome]]) -> None:
    print("## What a step detail costs (`bench/step_cost.py`)\n")
    print(f"- Command: `python bench/step_cost.py --rate {args.rate} --seconds {args.seconds} --tries {args.tries}`")
    print(f"- nproc: {os.cpu_count()}; load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| mode | try | service CPU (s) | wall (s) | lines | run log bytes | status events | steps bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, outcomes in results.items():
        for n, o in enumerate(outcomes, 1):
            print(
                f"| {mode} | {n} | {o.cpu:.2f} | {o.wall:.2f} | {o.lines:,} | {o.log_bytes:,} | {o.events:,} | "
                f"{o.steps_bytes:,} |"
            )
    plain = min(o.cpu for o in results["plain"])
    progress = min(o.cpu for o in results["progress"])
    reports = max(o.lines for o in results["progress"])
    best = min(results["progress"], key=lambda o: o.cpu)
    print()
    print(f"- service CPU, best of each: plain {plain:.2f} s, details {progress:.2f} s: **{progress / plain:.2f}x**")
    print(f"- extra CPU per detail over a plain line: **{(progress - plain) / reports * 1e6:.1f} µs**")
    print(f"- CPU per detail in all: {progress / reports * 1e6:.1f} µs; per plain line {plain / reports * 1e6:.1f} µs")
    print(f"- bytes per detail: {best.log_bytes / reports:.0f} in the run log (the line as printed, as for any line);")
    print(f"  {best.steps_bytes:,} bytes of steps kept in the history for the whole run (15 steps, last detail each)")
    print(f"- status events to one client during the run: {best.events:,} ({best.events / best.wall:.0f} a second)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tries", type=int, default=2)
    args = parser.parse_args()
    report(args, measure(args))


if __name__ == "__main__":
    main()
