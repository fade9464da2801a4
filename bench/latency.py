"""Latency benchmarks against a real service process (``python -m orchestrator serve``) in a temp folder.

Three phases, each with its own service on a free port and a pre-seeded state file (so there is no start-up
run and ``--interval 100000`` keeps the timer quiet):

``exec``      touch a trigger file -> the job process runs its first line. The job is
              ``bash -c 'echo $EPOCHREALTIME > ...'``: a shell builtin, no fork, so this is "spawned and
              exec'd" plus a millisecond or so of bash start-up.
``python``    the same with ``python -c 'import time; t = time.time_ns(); ...'`` run directly (no shell):
              includes the interpreter's start-up, which is what a Python job really pays.
``progress``  an atomic write of the progress file -> an SSE client receives the ``status`` event that
              shows the written step. The service is idle and has run nothing, so it shows the file as is.

Each touch waits for its run to finish (seen over SSE) before the next one; every run is counted three
ways (the job's own files, "started pid" lines in the service log, distinct run ids seen over SSE) and
must be exactly one per touch.

Touch rows marked "(log)" come from the service's own log lines ("trigger file ... taken", "run ...: started
pid"), whose timestamps have whole milliseconds: they are +-0.5 ms, and "started pid" is logged only after
asyncio has finished setting up the child's pipes, so it can come after the job's first line. Cross-process
times use the wall clock (``time.time_ns`` here, in the job, and ``$EPOCHREALTIME``); the progress phase
is all in this process and uses ``perf_counter_ns``.

    python bench/latency.py [--tries N] [--warmup N] [--results PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests.support`` lives in the checkout, not in the installed package

from orchestrator.disk.atomic import write_json_atomic  # noqa: E402
from orchestrator.live.progress import PROGRESS_FILE_NAME  # noqa: E402
from orchestrator.store.statefile import STATE_FILE_NAME  # noqa: E402
from tests.support import PYTHON, ServiceProcess, SSEEvent, sse_stream, start_service  # noqa: E402

DEFAULT_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NOTES_MARKER = "<!-- Everything below this line is hand-written and kept when the benchmark rewrites this file. -->"
WAIT_SECONDS = 10.0
"""Longest wait for any one expected event; a miss aborts the phase with the service log."""
SETTLE_SECONDS = 1.0
"""Quiet time after the last touch, so a late duplicate run would still be counted."""
SEED_RUN_ID = "seed"
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+\s+\S+: (.*)$")
"""The service's log format (``%(asctime)s %(levelname)-7s %(name)s: %(message)s``): local time, whole ms."""

EXEC_JOB = 'echo "$EPOCHREALTIME" > "$BENCH_RUNS/$SNAPSHOT_RUN_ID"'
PYTHON_JOB = (
    "import time; t = time.time_ns(); import os; "
    "open(os.path.join(os.environ['BENCH_RUNS'], os.environ['SNAPSHOT_RUN_ID']), 'w').write(str(t))"
)


# ------------------------------------------------------------------------------------------------ stats
def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Series:
    name: str
    samples_ms: list[float] = field(default_factory=list)

    def add_ns(self, ns: int) -> None:
        self.samples_ms.append(ns / 1e6)

    def row(self) -> list[str]:
        ordered = sorted(self.samples_ms)
        if not ordered:
            return [self.name, "0", *["-"] * 5]
        values = [ordered[0], percentile(ordered, 50), percentile(ordered, 90), percentile(ordered, 99), ordered[-1]]
        return [self.name, str(len(ordered)), *(f"{v:.2f}" for v in values)]

    def worst(self, count: int = 5) -> list[tuple[int, float]]:
        """(try number, ms) of the slowest tries, slowest first."""
        ranked = sorted(enumerate(self.samples_ms, start=1), key=lambda item: item[1], reverse=True)
        return ranked[:count]


HEADER = ["measurement", "n", "min", "median", "p90", "p99", "worst"]


def markdown_table(series: list[Series]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    lines += ["| " + " | ".join(s.row()) + " |" for s in series]
    return "\n".join(lines)


def text_table(series: list[Series]) -> str:
    rows = [HEADER, *(s.row() for s in series)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows[1:])])


# ---------------------------------------------------------------------------------------------- service
def seed_state(data_dir: Path) -> None:
    """A finished run "now": with a huge interval nothing is due, so the service starts idle."""
    data_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    write_json_atomic(
        data_dir / STATE_FILE_NAME,
        {
            "version": 1,
            "lastRun": {"runId": SEED_RUN_ID, "status": "completed", "triggers": [], "startedAt": now},
            "current": None,
            "notBefore": None,
            "pending": [],
        },
    )


def launch(root: Path, command: str) -> ServiceProcess:
    seed_state(root / "data")
    runs = root / "runs"
    runs.mkdir(parents=True)
    service = start_service(
        root, "--command", command, "--interval", "100000", "--log-level", "info", env={"BENCH_RUNS": str(runs)}
    )
    service.wait_ready()
    return service


class Events:
    """An SSE ``status`` stream with each document's arrival time (``perf_counter_ns`` and ``time_ns``)."""

    def __init__(self, stream: AsyncIterator[SSEEvent]) -> None:
        self._stream = stream
        self.seen_run_ids: set[str] = set()
        self.count = 0

    async def next(self, within: float = WAIT_SECONDS) -> tuple[dict[str, Any], int, int]:
        async with asyncio.timeout(within):
            async for event in self._stream:
                if event.event != "status":
                    continue
                mono, wall = time.perf_counter_ns(), time.time_ns()
                document: dict[str, Any] = event.json()
                self.count += 1
                for key in ("currentRun", "lastRun"):
                    if document.get(key):
                        self.seen_run_ids.add(document[key]["runId"])
                return document, mono, wall
        raise RuntimeError("event stream ended")

    async def drain(self, quiet: float) -> None:
        """Read events until none has come for ``quiet`` seconds."""
        with contextlib.suppress(TimeoutError):
            while True:
                await self.next(quiet)

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> tuple[dict[str, Any], int, int]:
        while True:
            document, mono, wall = await self.next()
            if predicate(document):
                return document, mono, wall


def fail(service: ServiceProcess, why: str) -> RuntimeError:
    tail = "\n".join(service.logs().splitlines()[-30:])
    return RuntimeError(f"{why}\n--- service log (tail) ---\n{tail}")


# ------------------------------------------------------------------------------------------- touch phase
@dataclass
class TouchResult:
    touches: int
    runs_by_job_files: int
    runs_by_log: int
    runs_by_sse: int
    multi_trigger_runs: int
    leftover_trigger_files: int
    not_completed: int
    series: list[Series]

    @property
    def one_run_per_touch(self) -> bool:
        counts = (self.runs_by_job_files, self.runs_by_log, self.runs_by_sse)
        return all(c == self.touches for c in counts) and self.multi_trigger_runs == 0


def touch(path: Path) -> None:
    """What ``touch`` does for a new file: create it, then set its times through the descriptor (so a
    service that takes the file at once cannot make this fail)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY, 0o644)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def job_started_ns(text: str) -> int:
    """The job's own start stamp: integer ns (Python's ``time_ns``) or ``seconds.micros`` ($EPOCHREALTIME)."""
    text = text.strip().replace(",", ".")
    return int(Decimal(text) * 1_000_000_000) if "." in text else int(text)


def log_times_ns(log: str, marker: str) -> list[int]:
    """When each log line containing ``marker`` was logged, as epoch ns. The log has whole milliseconds,
    truncated, so half a millisecond is added: each value is then within +-0.5 ms of the truth."""
    stamps = []
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match and marker in match.group(2):
            local = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            stamps.append(round(local.timestamp() * 1e9) + 500_000)
    return stamps


@dataclass(frozen=True)
class Touch:
    """One timed touch, all times epoch ns: the touch, the first SSE event showing its run, the SSE event
    showing it finished, and the job's own start stamp; plus the finished run's record."""

    touched: int
    visible: int
    finished: int
    job_started: int
    run: dict[str, Any]


async def touch_once(events: Events, trigger: Path, runs_dir: Path, known: set[str]) -> Touch:
    """Touch, wait for the run it causes to finish, return its times. ``known``: run ids seen so far."""

    def shows_new_run(d: dict[str, Any]) -> bool:
        ids = {(d.get(k) or {}).get("runId") for k in ("currentRun", "lastRun")}
        return bool(ids - known - {None})

    def finished(d: dict[str, Any]) -> bool:
        return not d["running"] and d["lastRun"]["runId"] not in known

    t0 = time.time_ns()
    touch(trigger)
    document, _, visible_at = await events.until(shows_new_run)
    done_at = visible_at
    if not finished(document):
        document, _, done_at = await events.until(finished)
    run = document["lastRun"]
    known.add(run["runId"])
    return Touch(t0, visible_at, done_at, job_started_ns((runs_dir / run["runId"]).read_text()), run)


async def touch_phase(root: Path, label: str, command: str, *, tries: int, warmup: int, gap: float) -> TouchResult:
    service = launch(root, command)
    runs_dir = root / "runs"
    done: list[Touch] = []
    leftovers = 0
    try:
        async with aiohttp.ClientSession() as session:
            events = Events(sse_stream(session, service.url + "/api/snapshot/events"))
            await events.next()
            known = {SEED_RUN_ID}
            for attempt in range(warmup + tries):
                try:
                    done.append(await touch_once(events, service.triggers_dir / "run-now", runs_dir, known))
                except TimeoutError:
                    why = f"{label}: touch {attempt + 1} gave no finished run within {WAIT_SECONDS}s"
                    raise fail(service, why) from None
                leftovers += any(not name.startswith(".") for name in os.listdir(service.triggers_dir))
                await asyncio.sleep(gap)
            # A duplicate run started late (after the rescan that follows each run) would show up here.
            await events.drain(SETTLE_SECONDS)
    finally:
        service.stop()
    log = service.logs()
    timed = done[warmup:]
    series = [
        Series(f"[{label}] touch -> service took the file (log)"),
        Series(f"[{label}] touch -> SSE shows the run"),
        Series(f"[{label}] touch -> spawn call returned (log)"),
        Series(f"[{label}] touch -> job's first line"),
        Series(f"[{label}] touch -> SSE shows it finished"),
    ]
    taken_at, spawned_at = log_times_ns(log, "trigger file 'run-now' taken"), log_times_ns(log, ": started pid ")
    if len(taken_at) == len(spawned_at) == len(done):  # else a run is missing or extra: counted below
        for t, took, spawned in zip(timed, taken_at[warmup:], spawned_at[warmup:], strict=True):
            series[0].add_ns(took - t.touched)
            series[2].add_ns(spawned - t.touched)
    for t in timed:
        series[1].add_ns(t.visible - t.touched)
        series[3].add_ns(t.job_started - t.touched)
        series[4].add_ns(t.finished - t.touched)
    return TouchResult(
        touches=len(done),
        runs_by_job_files=len(list(runs_dir.iterdir())),
        runs_by_log=len(spawned_at),
        runs_by_sse=len(events.seen_run_ids - {SEED_RUN_ID}),
        multi_trigger_runs=sum(len(t.run["triggers"]) != 1 for t in done),
        leftover_trigger_files=leftovers,
        not_completed=sum(t.run["status"] != "completed" for t in done),
        series=series,
    )


# ---------------------------------------------------------------------------------------- progress phase
@dataclass
class ProgressResult:
    writes: int
    other_events: int
    runs: int
    from_write_start: Series
    from_write_done: Series
    write_itself: Series


async def progress_phase(root: Path, *, tries: int, warmup: int, gap: float) -> ProgressResult:
    service = launch(root, f"{PYTHON} -c {shlex.quote(PYTHON_JOB)}")
    path = service.data_dir / PROGRESS_FILE_NAME
    from_start = Series("progress write started -> SSE event")
    from_done = Series("progress write returned -> SSE event")
    write_cost = Series("the atomic write itself (fsync + rename)")
    other = 0
    try:
        async with aiohttp.ClientSession() as session:
            events = Events(sse_stream(session, service.url + "/api/snapshot/events"))
            await events.next()
            for attempt in range(warmup + tries):
                step = f"bench {attempt}"
                document = {"status": "running", "step": step, "progress": attempt % 100, "startedAt": None}
                t0 = time.perf_counter_ns()
                write_json_atomic(path, document)
                t1 = time.perf_counter_ns()
                try:
                    while True:
                        status, received, _ = await events.next()
                        if status["progress"]["step"] == step:
                            break
                        other += 1
                except TimeoutError:
                    why = f"progress: write {attempt + 1} not seen over SSE within {WAIT_SECONDS}s"
                    raise fail(service, why) from None
                if status["running"]:
                    raise fail(service, "progress: the service started a run during the progress phase")
                if attempt >= warmup:
                    from_start.add_ns(received - t0)
                    from_done.add_ns(received - t1)
                    write_cost.add_ns(t1 - t0)
                await asyncio.sleep(gap)
    finally:
        service.stop()
    return ProgressResult(
        writes=warmup + tries,
        other_events=other,
        runs=len(list((root / "runs").iterdir())),
        from_write_start=from_start,
        from_write_done=from_done,
        write_itself=write_cost,
    )


# --------------------------------------------------------------------------------------------- reporting
def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "aiohttp / watchdog": f"{version('aiohttp')} / {version('watchdog')}",
        "temp dir": f"{tempfile.gettempdir()} ({filesystem(Path(tempfile.gettempdir()))})",
    }


def filesystem(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown fs"


def run_checks(touches: list[tuple[str, TouchResult]], progress: ProgressResult) -> list[str]:
    lines = []
    for label, t in touches:
        verdict = "exactly one run per touch" if t.one_run_per_touch else "MISMATCH"
        lines.append(
            f"- {label} phase: {t.touches} touches -> {t.runs_by_job_files} runs by the job's own files, "
            f"{t.runs_by_log} by 'started pid' log lines, {t.runs_by_sse} distinct run ids over SSE; "
            f"{t.multi_trigger_runs} runs with more than one trigger, {t.not_completed} not completed, "
            f"{t.leftover_trigger_files} times a trigger file was left behind: **{verdict}**"
        )
    lines.append(
        f"- progress phase: {progress.writes} writes, each seen over SSE; {progress.other_events} other status "
        f"events in between; {progress.runs} job runs (0 expected)"
    )
    return lines


def worst_lines(series: list[Series]) -> list[str]:
    return [f"- {s.name}: " + ", ".join(f"#{i} {ms:.1f} ms" for i, ms in s.worst()) for s in series if s.samples_ms]


def load_average() -> str:
    """1/5/15-minute load averages: other work on the machine shows up in the tails."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def write_results(path: Path, facts: dict[str, str], body: list[str]) -> None:
    """Rewrite ``path``, keeping whatever was written by hand below :data:`NOTES_MARKER`."""
    notes = ""
    if path.exists():
        _, marker, kept = path.read_text().partition(NOTES_MARKER)
        notes = kept if marker else ""
    head = [
        "# Latency benchmark results",
        "",
        "Written by `bench/latency.py`.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
        "",
    ]
    path.write_text("\n".join([*head, *body, "", NOTES_MARKER]) + (notes or "\n"))


LEGEND = [
    "- *[bash job]*: the job is `bash -c 'echo $EPOCHREALTIME > ...'` (a builtin: no fork), so its first line "
    'is as close to "the process was exec\'d" as a job gets (plus ~1 ms of bash start-up).',
    "- *[python job]*: the job is `python -c 'import time; t = time.time_ns(); ...'` run directly (no shell), "
    "with the venv's interpreter: its first line includes interpreter start-up.",
    "- *touch -> service took the file (log)* / *spawn call returned (log)*: from the service's log lines "
    "`trigger file 'run-now' taken` and `run ...: started pid`, whole-millisecond timestamps, so +-0.5 ms; the "
    "second is logged after asyncio has set up the child's pipes, so it may come after the job's first line.",
    "- *touch -> SSE shows the run*: the first `status` event naming the new run (running, or already finished "
    "if the hub coalesced). The service publishes `running` just before it spawns the job.",
    "- *touch -> SSE shows it finished*: the `status` event with `running: false` and the new `lastRun`; the next "
    "touch waits for it (plus the gap).",
    "- *progress write started / returned -> SSE event*: from just before / just after "
    "`write_json_atomic(<data-dir>/snapshot_progress.json, ...)` to the `status` event whose `progress.step` is "
    "the written step; *the atomic write itself* is the difference (temp file, fsync, rename).",
]


# -------------------------------------------------------------------------------------------------- main
async def main_async(args: argparse.Namespace) -> int:
    gap = args.gap_ms / 1000
    started, t_start, load_before = datetime.now(UTC), time.monotonic(), load_average()
    touches: list[tuple[str, TouchResult]] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        root = Path(tmp)
        bash = shutil.which("bash")
        if bash is None:
            print("bash not found: skipping the exec phase", file=sys.stderr)
        else:
            command = f"{bash} -c {shlex.quote(EXEC_JOB)}"
            result = await touch_phase(
                root / "exec", "bash job", command, tries=args.tries, warmup=args.warmup, gap=gap
            )
            touches.append(("exec", result))
        command = f"{PYTHON} -c {shlex.quote(PYTHON_JOB)}"
        result = await touch_phase(
            root / "python", "python job", command, tries=args.tries, warmup=args.warmup, gap=gap
        )
        touches.append(("python", result))
        progress = await progress_phase(root / "progress", tries=args.tries, warmup=args.warmup, gap=gap)
    elapsed = time.monotonic() - t_start

    touch_series = [s for _, t in touches for s in t.series if s.samples_ms]
    progress_series = [progress.from_write_start, progress.from_write_done, progress.write_itself]
    checks = run_checks(touches, progress)
    print(f"\ntouch -> job start ({args.tries} tries after {args.warmup} warm-up, ms)\n")
    print(text_table(touch_series))
    print(f"\nprogress write -> SSE ({args.tries} tries after {args.warmup} warm-up, ms)\n")
    print(text_table(progress_series))
    print("\nRun counts:\n" + "\n".join(checks))
    print("\nSlowest tries:\n" + "\n".join(worst_lines([*touch_series, *progress_series])))

    command = "python bench/latency.py" + "".join(f" {a}" for a in args.argv)
    body = [
        "## What the rows mean",
        "",
        *LEGEND,
        "",
        f"## 1. touch -> job start ({args.tries} tries after {args.warmup} warm-up, milliseconds)",
        "",
        markdown_table(touch_series),
        "",
        f"## 2. progress file write -> SSE client receives it ({args.tries} tries after {args.warmup} warm-up, ms)",
        "",
        markdown_table(progress_series),
        "",
        "## Run counts",
        "",
        *checks,
        "",
        "## Slowest tries (try number among the timed ones, ms)",
        "",
        *worst_lines([*touch_series, *progress_series]),
    ]
    if args.results is not None:
        facts = {
            "Command": f"`{command}`",
            "Date": f"{started.isoformat(timespec='seconds').replace('+00:00', 'Z')} (took {elapsed:.0f} s)",
            **machine(),
            "load average 1/5/15 min": f"{load_before} before, {load_average()} after",
        }
        write_results(args.results, facts, body)
        print(f"\nwrote {args.results}")
    ok = all(t.one_run_per_touch for _, t in touches) and progress.runs == 0
    return 0 if ok else 1


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=positive, default=300, help="timed tries per phase (default 300)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed tries before them (default 5)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause after each try (default 20 ms)")
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"markdown file to write (default {DEFAULT_RESULTS.relative_to(REPO)})",
    )
    parser.add_argument("--no-results", dest="results", action="store_const", const=None, help="print only")
    args = parser.parse_args()
    args.argv = [shlex.quote(a) for a in sys.argv[1:]]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
