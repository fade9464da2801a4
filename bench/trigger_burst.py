"""A burst of trigger files against a real service process (``python -m orchestrator serve``) in a temp folder.

The job runs for as long as the benchmark (``sleep 3600``): one ``run-now`` file starts it, and every file of
the burst then becomes a pending trigger of the follow-up run, so the state file's ``pendingCount`` counts
them, exactly once each. For each writer count in ``--writers`` (a fresh service each):

1. ``/health`` of the idle service (its job running, nothing else), polled by a separate client process for
   ``--idle-seconds``: the reference for the latency under the burst.
2. The burst: ``--files`` empty files created at once (``open(O_CREAT|O_EXCL)`` + ``close`` each, as fast as
   the writer can), split among the writer processes, all started together. Measured: from the last file's
   close (any writer) until every file is taken: gone from the folder **and** counted in the state file
   (``pendingCount`` = the number of files; the bench polls both every millisecond or so). Meanwhile the
   same client polls ``/health`` (one keep-alive connection, ``--health-gap-ms`` between requests).

The floor, in the same run: a plain Python loop in a fresh process that lists the same number of files (made
by the same writer), removes them and fsyncs one small file once; and the same with a read of each file (what
a consumer that reads each trigger's reason must do at least).

    python bench/trigger_burst.py [--files 10000] [--writers 1 2] [--idle-seconds 2] [--code /work/base]

``--code PATH``: the service runs the package found in ``PATH`` (put first on its ``PYTHONPATH``; the output
says which ``orchestrator/__init__.py`` it imports). Prints Markdown tables for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests.support`` lives in the checkout, not in the installed package

from orchestrator.store.journal import JOURNAL_FILE_NAME  # noqa: E402
from orchestrator.store.statefile import read_state_file  # noqa: E402
from tests.support import PYTHON, ServiceProcess, start_service  # noqa: E402

STATE_FILE = "orchestrator_state.json"
HOWS = ("create", "rename")
WAIT_SECONDS = 60.0
"""Longest wait for the burst to be taken; a miss aborts with the service log."""

WRITER = r"""
import os, sys, time
folder, prefix, count, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
names = [f"{prefix}-{n:06d}" for n in range(count)]
if how == "rename":
    stage = os.path.join(os.path.dirname(folder), f"stage-{prefix}")
    os.mkdir(stage)
    for name in names:
        os.close(os.open(os.path.join(stage, name), flags, 0o644))
    src, dst = os.open(stage, os.O_RDONLY), os.open(folder, os.O_RDONLY)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
first = time.monotonic_ns()
if how == "rename":
    for name in names:
        os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)
else:
    for name in names:
        os.close(os.open(os.path.join(folder, name), flags, 0o644))
print(first, time.monotonic_ns(), flush=True)
"""
"""A writer process: once told to go (a line on stdin), makes its files (``create``: open with ``O_CREAT`` and
close each; ``rename``: each made beforehand in a folder of its own, renamed into the folder); prints its first
and last write."""

FLOOR = r"""
import os, sys, time
folder, read = sys.argv[1], sys.argv[2] == "read"
t0 = time.perf_counter_ns()
fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
names = [e.name for e in os.scandir(fd)]
if read:
    for name in names:
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        os.read(f, 4096)
        os.close(f)
mark = os.open(os.path.join(os.path.dirname(folder), "floor-state"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(mark, b'{"pendingCount": %d}' % len(names))
os.fsync(mark)
os.close(mark)
for name in names:
    os.unlink(name, dir_fd=fd)
os.close(fd)
print(len(names), time.perf_counter_ns() - t0)
"""
"""The floor: list, (read,) fsync once, remove; prints the count and the nanoseconds it took."""


# ------------------------------------------------------------------------------------------ /health poller
def poll_health(port: int, gap: float, control: Any, results: Any) -> None:
    """In its own process: GET /health on one keep-alive connection, ``gap`` seconds apart, from "start" to
    "stop" (told on ``control``, repeatedly); each window's (sent at, latency) in ns goes to ``results``."""
    import asyncio

    import aiohttp

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            url = f"http://127.0.0.1:{port}/health"
            async with session.get(url) as response:  # the connection is open before the first window
                await response.read()
            results.put("ready")
            while True:
                command = await asyncio.to_thread(control.get)
                if command == "quit":
                    return
                samples: list[tuple[int, int]] = []
                while control.empty():
                    sent = time.monotonic_ns()
                    async with session.get(url) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"/health answered {response.status}")
                    samples.append((sent, time.monotonic_ns() - sent))
                    await asyncio.sleep(gap)
                control.get()  # "stop"
                results.put(samples)

    asyncio.run(main())


class HealthPoller:
    def __init__(self, port: int, gap: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._control = ctx.Queue()
        self._results = ctx.Queue()
        self._proc = ctx.Process(target=poll_health, args=(port, gap, self._control, self._results), daemon=True)
        self._proc.start()
        if self._results.get(timeout=30) != "ready":
            raise RuntimeError("the /health poller did not start")

    def start(self) -> None:
        self._control.put("start")

    def stop(self) -> list[tuple[int, int]]:
        self._control.put("stop")
        samples: list[tuple[int, int]] = self._results.get(timeout=30)
        return samples

    def close(self) -> None:
        self._control.put("quit")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Latency:
    samples_ms: list[float]

    def at(self, p: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan

    @property
    def p50(self) -> float:
        return self.at(50)

    @property
    def p99(self) -> float:
        return self.at(99)

    @property
    def max(self) -> float:
        return max(self.samples_ms, default=math.nan)


@dataclass
class Burst:
    how: str
    writers: int
    files: int
    writing_ms: float
    after_last_write_ms: float
    after_first_write_ms: float
    counted_ms: float
    """From the last write until ``pendingCount`` showed every file (the files are removed after that)."""
    pending_count: int
    left_in_folder: int
    service_cpu_s: float
    idle: Latency
    during: Latency
    warnings: int


def seed_state(data_dir: Path) -> None:
    """A finished run "now": with a huge interval nothing is due, so the service starts idle."""
    data_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    run = {"runId": "seed", "status": "completed", "triggers": [], "startedAt": now}
    document = {"version": 1, "lastRun": run, "current": None, "notBefore": None, "pending": []}
    (data_dir / STATE_FILE).write_text(json.dumps(document))


class StateWatch:
    """The state file (with its journal) as the service last wrote it, read again only when either changed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[tuple[int, int, int], ...] | None = None
        self.job: dict[str, Any] = {}

    def poll(self) -> dict[str, Any]:
        seen = tuple(_identity(path) for path in (self._path, self._path.with_name(JOURNAL_FILE_NAME)))
        if seen != self._seen:
            with contextlib.suppress(OSError, ValueError):
                self.job = read_state_file(self._path, "snapshot")[0].get("snapshot", {})
                self._seen = seen
        return self.job


def _identity(path: Path) -> tuple[int, int, int]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (0, 0, 0)
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def wait_until(what: str, check: Any, service: ServiceProcess, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout}s\n{service.logs()[-4000:]}")
        time.sleep(0.002)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_writers(folder: Path, files: int, writers: int, how: str) -> list[subprocess.Popen[str]]:
    procs = []
    for w in range(writers):
        count = files // writers + (1 if w < files % writers else 0)
        proc = subprocess.Popen(
            [PYTHON, "-c", WRITER, str(folder), f"w{w}", str(count), how],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a writer did not start")
        procs.append(proc)
    return procs


def go(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def finish(procs: list[subprocess.Popen[str]]) -> tuple[int, int]:
    """The first write and the last close of all writers (monotonic ns)."""
    spans = []
    for proc in procs:
        assert proc.stdout is not None
        first, last = (int(v) for v in proc.stdout.readline().split())
        proc.wait(timeout=30)
        spans.append((first, last))
    return min(s[0] for s in spans), max(s[1] for s in spans)


def burst(root: Path, args: argparse.Namespace, how: str, writers: int, env: dict[str, str]) -> Burst:
    seed_state(root / "data")
    sleep = shutil.which("sleep") or "sleep"
    service = start_service(
        root, "--command", f"{sleep} 3600", "--interval", "100000", "--log-level", args.log_level, env=env
    )
    poller = None
    try:
        service.wait_ready()
        state = StateWatch(service.data_dir / STATE_FILE)
        (service.triggers_dir / "run-now").touch()
        wait_until("the run started", lambda: bool(state.poll().get("current")), service)
        wait_until("run-now taken", lambda: not os.listdir(service.triggers_dir), service)
        poller = HealthPoller(service.port, args.health_gap_ms / 1000)
        poller.start()
        time.sleep(args.idle_seconds)
        idle = poller.stop()
        procs = start_writers(service.triggers_dir, args.files, writers, how)
        cpu_before = cpu_seconds(service.proc.pid)
        poller.start()
        go(procs)
        counted_at = 0

        def counted() -> bool:
            return int(state.poll().get("pendingCount") or 0) >= args.files

        def taken() -> bool:
            nonlocal counted_at
            if not counted_at:
                if not counted():
                    return False
                counted_at = time.monotonic_ns()
            return not os.listdir(service.triggers_dir)

        wait_until(f"{args.files} files taken", taken, service)
        done = time.monotonic_ns()
        during = poller.stop()
        cpu = cpu_seconds(service.proc.pid) - cpu_before
        first, last = finish(procs)
        time.sleep(args.settle)  # a late or doubled trigger would show up in the count
        pending = int(state.poll().get("pendingCount") or 0)
        left = len(os.listdir(service.triggers_dir))
    finally:
        if poller is not None:
            poller.close()
        service.stop()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(service.log_path, args.keep_logs / f"{how}-{writers}.log")
    window = [ms for sent, ms in ((s, n / 1e6) for s, n in during) if sent <= done]
    return Burst(
        how=how,
        writers=writers,
        files=args.files,
        writing_ms=(last - first) / 1e6,
        after_last_write_ms=(done - last) / 1e6,
        after_first_write_ms=(done - first) / 1e6,
        counted_ms=(counted_at - last) / 1e6,
        pending_count=pending,
        left_in_folder=left,
        service_cpu_s=cpu,
        idle=Latency([n / 1e6 for _, n in idle]),
        during=Latency(window),
        warnings=sum(" WARNING " in line or " ERROR " in line for line in service.logs().splitlines()),
    )


def write_alone(root: Path, files: int, how: str) -> tuple[Path, float]:
    """``files`` files made in a folder nobody watches by one writer; the folder, and ms the writing took."""
    folder = root / f"alone-{how}" / "triggers"
    folder.mkdir(parents=True)
    go(procs := start_writers(folder, files, 1, how))
    first, last = finish(procs)
    return folder, (last - first) / 1e6


def floor(folder: Path, files: int, *, read: bool) -> float:
    """ms for a fresh process to list, (read,) fsync once and remove the ``files`` files in ``folder``."""
    out = subprocess.run(
        [PYTHON, "-c", FLOOR, str(folder), "read" if read else "list"], capture_output=True, text=True, check=True
    ).stdout.split()
    if int(out[0]) != files:
        raise RuntimeError(f"floor saw {out[0]} files, not {files}")
    return int(out[1]) / 1e6


# --------------------------------------------------------------------------------------------- reporting
def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def service_code(env: dict[str, str]) -> str:
    """Where the service's interpreter, with the service's environment, imports the package from."""
    done = subprocess.run(
        [PYTHON, "-c", "import orchestrator; print(orchestrator.__file__)"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tempfile.gettempdir(),
        check=True,
    )
    return done.stdout.strip()


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def report(
    bursts: list[Burst], floors: dict[str, float], alone: dict[str, float], args: argparse.Namespace, code: str
) -> str:
    bare, with_read = floors["list"], floors["read"]
    rows = []
    for b in bursts:
        who = f"{b.how}, {b.writers} writer{'s' if b.writers > 1 else ''}"
        rows.append(
            [
                f"{b.files:,} files taken after the last write ({who})",
                f"{b.after_last_write_ms:.0f} ms",
                f"{bare:.0f} ms / {with_read:.0f} ms",
                f"{b.after_last_write_ms / bare:.2f}x / {b.after_last_write_ms / with_read:.2f}x",
            ]
        )
        rows.append(
            [
                f"/health p99 during the burst ({who})",
                f"{b.during.p99:.1f} ms",
                f"{b.idle.p99:.1f} ms (idle service)",
                f"{b.during.p99 / b.idle.p99:.1f}x",
            ]
        )
    detail = [
        [
            b.how,
            str(b.writers),
            f"{b.writing_ms:.0f} ({b.writing_ms / alone[b.how]:.1f}x alone)",
            f"{b.after_first_write_ms:.0f}",
            f"{b.counted_ms:.0f}",
            f"{b.after_last_write_ms:.0f}",
            f"{b.pending_count:,}" + ("" if b.pending_count == b.files else " **MISMATCH**"),
            str(b.left_in_folder),
            f"{b.service_cpu_s:.2f}",
            f"{len(b.during.samples_ms)}: {b.during.p50:.1f} / {b.during.p99:.1f} / {b.during.max:.1f}",
            f"{len(b.idle.samples_ms)}: {b.idle.p50:.1f} / {b.idle.p99:.1f} / {b.idle.max:.1f}",
            str(b.warnings),
        ]
        for b in bursts
    ]
    command = "python bench/trigger_burst.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    return "\n".join(
        [
            f"### {args.files:,} trigger files dropped at once",
            "",
            f"- command: `{command}`",
            f"- service code: `{code}`",
            f"- machine: {os.cpu_count()} cores, {platform.python_version()}, {platform.system()} {platform.release()},"
            f" fd limit {_nofile()}; load average 1/5/15 min before: {args.load_before}, after: {load_average()}",
            "- one writer alone, nobody watching: "
            + ", ".join(f"{how} {ms:.0f} ms" for how, ms in alone.items())
            + " (the floor's files)",
            "",
            table(rows, ["figure", "service", "floor: list+fsync+remove / with a read each", "ratio"]),
            "",
            table(
                detail,
                [
                    "files",
                    "writers",
                    "writing took ms",
                    "first write → taken ms",
                    "last write → all counted ms",
                    "last write → all taken ms",
                    "pendingCount",
                    "files left",
                    "service CPU s",
                    "/health during: n: p50 / p99 / max ms",
                    "/health idle: n: p50 / p99 / max ms",
                    "warnings logged",
                ],
            ),
        ]
    )


def _nofile() -> str:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"{soft}/{hard}"


# -------------------------------------------------------------------------------------------------- main
def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=positive, default=10_000, help="trigger files in the burst (default 10000)")
    parser.add_argument(
        "--writers", type=positive, nargs="+", default=[1, 2], help="writer processes, one round each (default 1 2)"
    )
    parser.add_argument(
        "--how", choices=HOWS, nargs="+", default=list(HOWS), help="how files are dropped (default: both)"
    )
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="/health of the idle service (default 2)")
    parser.add_argument("--health-gap-ms", type=float, default=2.0, help="pause between /health polls (default 2)")
    parser.add_argument("--settle", type=float, default=0.5, help="wait after the take, then count (default 0.5)")
    parser.add_argument("--log-level", default="info", help="the service's log level (default info)")
    parser.add_argument("--keep-logs", type=Path, help="copy each round's service log into this folder")
    parser.add_argument("--code", type=Path, help="the checkout whose package the service runs (PYTHONPATH)")
    args = parser.parse_args()
    args.load_before = load_average()
    env = {}
    if args.code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.code.resolve()), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    code = service_code(env)
    bursts = []
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        root = Path(tmp)
        alone: dict[str, float] = {}
        floors: dict[str, float] = {}
        for how, kind in zip(HOWS, ("list", "read"), strict=True):
            folder, alone[how] = write_alone(root, args.files, how)
            floors[kind] = floor(folder, args.files, read=kind == "read")
        rounds = [(how, writers) for how in args.how for writers in args.writers]
        for n, (how, writers) in enumerate(rounds):
            bursts.append(burst(root / f"round{n}", args, how, writers, env))
    print(report(bursts, floors, alone, args, code))
    ok = all(b.pending_count == b.files and b.left_in_folder == 0 for b in bursts)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
