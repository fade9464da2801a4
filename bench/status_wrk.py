"""The status document under load: ``wrk -t1 -c32`` against the real service (``python -m orchestrator serve``,
default settings) and, in the same run, against a bare aiohttp app in its own process whose one handler returns
the same bytes (the service's document, fetched once), and the same bare app behind the service's own guard
middleware and answer-headers hook (what the protections cost by themselves). They take turns, ``--rounds``
times each.

1. ``GET /api/snapshot/status``: the service with its one job (``snapshot``, the bundled sample job, which ran
   just before: nothing runs, nothing is due for an hour).
2. ``GET /api/jobs`` with ``--jobs`` jobs (a jobs file of ``bench/jobs_fleet.py``: interval, calendar and manual
   jobs, some chained, every one run just now): every job's status document in one answer.

    python bench/status_wrk.py [--seconds 5] [--rounds 3] [--jobs 100] [--connections 32] [--code /work/base]

``--code PATH`` runs the service from another checkout (first on its ``PYTHONPATH``; the output says which
``orchestrator`` the service imports). Prints a Markdown section for ``bench/RESULTS.md``: per figure, the
median over the rounds of each side's req/s, latency p50/p99 (wrk's ``--latency``) and the server's CPU time per
request (``/proc``: less swayed by what else the machine runs than req/s), and the ratio ours/bare.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests.support`` and ``bench`` live in the checkout

from bench.jobs_fleet import fleet, seed_state, write_jobs_file  # noqa: E402
from tests.support import PYTHON, ServiceProcess, free_port, start_service  # noqa: E402

BARE_APP = """
import sys
from aiohttp import web
port, path = int(sys.argv[1]), sys.argv[2]
body = open(path, "rb").read()
async def handler(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get(sys.argv[3], handler)
if sys.argv[4:] == ["guarded"]:  # the service's own guard and answer headers, as create_app installs them
    from orchestrator.config import HttpSettings
    from orchestrator.core.clock import SystemClock
    from orchestrator.http import guard, headers
    the_guard = guard.Guard(HttpSettings(), SystemClock(), 16 * 1024)
    guard.install(app, the_guard)
    headers.install(app, (), also=[the_guard.answer_headers])
web.run_app(app, host="127.0.0.1", port=port, print=lambda *a: print("listening", flush=True))
"""
"""The reference: one route, one handler answering fixed bytes, aiohttp's defaults (``run_app``). With
``guarded``: the same, behind the service's guard middleware and answer-headers hook with default settings (the
``Host`` check, the body cap, CSP and the other headers): what those protections cost on their own, so the
ceiling of ours / bare while the service keeps them."""


@dataclass(frozen=True)
class Wrk:
    """One wrk run: requests a second, latency percentiles in ms, the requests wrk counted, and the server's
    CPU time (user + system, all its threads) per request in microseconds."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_us: float = 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk_on(pid: int, url: str, seconds: int, connections: int) -> Wrk:
    """:func:`run_wrk`, with the CPU time the process ``pid`` spent meanwhile."""
    before = cpu_seconds(pid)
    found = run_wrk(url, seconds, connections)
    return replace(found, cpu_us=1e6 * (cpu_seconds(pid) - before) / max(1, found.requests))


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, seconds: int, connections: int) -> Wrk:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=seconds + 30).stdout
    if bad := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"{bad.group(1)} answers were not 2xx from {url}:\n{out}")
    if errors := re.search(r"Socket errors: .*", out):
        print(f"<!-- {url}: {errors.group(0)} -->")

    def latency(p: int) -> float:
        found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {p}% latency in wrk's output:\n{out}")
        return float(found.group(1)) * UNITS[found.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or count is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return Wrk(float(rps.group(1)), latency(50), latency(99), int(count.group(1)))


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


class Bare:
    """The bare aiohttp app serving ``body`` at ``path``, in its own process."""

    def __init__(self, root: Path, path: str, body: bytes, *, guarded: bool = False, code: Path | None = None) -> None:
        self.port = free_port()
        body_file = root / f"bare-{self.port}.json"
        body_file.write_bytes(body)
        argv = [PYTHON, "-c", BARE_APP, str(self.port), str(body_file), path, *(["guarded"] if guarded else [])]
        env = {**os.environ, **({"PYTHONPATH": str(code)} if code is not None else {})}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{self.port}{path}"
        try:
            if "listening" not in self.proc.stdout.readline():
                raise RuntimeError("the bare app did not start")
            if fetch(self.url) != body:
                raise RuntimeError("the bare app does not answer the service's bytes")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def service(root: Path, code: Path | None, jobs: int) -> ServiceProcess:
    """The service with default settings; with ``jobs`` > 0, a jobs file of that many (``job000`` the default
    job). Every job ran just now, so nothing runs while it is measured."""
    env = {"PYTHONPATH": str(code)} if code is not None else None
    args: list[str] = []
    if jobs:
        ctl = root / "ctl"
        ctl.mkdir(parents=True)
        fleet_jobs = fleet(jobs)
        write_jobs_file(ctl / "jobs.toml", fleet_jobs, [PYTHON, "-c", "pass"])
        seed_state(root / "data", [j.name for j in fleet_jobs])
        args = ["--jobs", str(ctl / "jobs.toml")]
    else:
        seed_state(root / "data", ["snapshot"])
    proc = start_service(root, *args, env=env)
    proc.wait_ready()
    return proc


def imported_from(code: Path | None) -> str:
    """Which ``orchestrator`` the service's interpreter imports with the service's environment."""
    env = {**os.environ, **({"PYTHONPATH": str(code)} if code is not None else {})}
    probe = [PYTHON, "-c", "import orchestrator; print(orchestrator.__file__)"]
    return subprocess.run(probe, check=True, capture_output=True, text=True, env=env, cwd="/").stdout.strip()


@dataclass
class Figure:
    title: str
    path: str
    ours: list[Wrk]
    bare: list[Wrk]
    guarded: list[Wrk]
    size: int


def measure(title: str, proc: ServiceProcess, path: str, root: Path, args: argparse.Namespace) -> Figure:
    body = fetch(proc.url + path)
    figure = Figure(title, path, [], [], [], len(body))
    with contextlib.ExitStack() as started:
        bare = Bare(root, path, body)
        started.callback(bare.stop)
        guarded = Bare(root, path, body, guarded=True, code=args.code)
        started.callback(guarded.stop)
        order = [
            (proc.proc.pid, proc.url + path, figure.ours),
            (bare.proc.pid, bare.url, figure.bare),
            (guarded.proc.pid, guarded.url, figure.guarded),
        ]
        for _, url, _ in order:  # warm each up
            run_wrk(url, 1, args.connections)
        for round_ in range(args.rounds):
            turn = round_ % len(order)
            for pid, url, into in order[turn:] + order[:turn]:
                into.append(run_wrk_on(pid, url, args.seconds, args.connections))
    return figure


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(figure: Figure) -> str:
    ours = [median([getattr(w, f) for w in figure.ours]) for f in FIELDS]
    bare = [median([getattr(w, f) for w in figure.bare]) for f in FIELDS]
    guarded = [median([getattr(w, f) for w in figure.guarded]) for f in FIELDS]
    each = ", ".join(f"{w.rps:,.0f}" for w in figure.ours)
    each_bare = ", ".join(f"{w.rps:,.0f}" for w in figure.bare)
    each_guarded = ", ".join(f"{w.rps:,.0f}" for w in figure.guarded)
    return "\n".join(
        [
            f"### {figure.title}",
            "",
            f"`GET {figure.path}`, {figure.size:,} bytes; median of {len(figure.ours)} rounds "
            f"(ours: {each}; bare: {each_bare}; bare + guard: {each_guarded} req/s)",
            "",
            "| server | req/s | p50 ms | p99 ms | server CPU µs/request |",
            "|---|---:|---:|---:|---:|",
            f"| ours | {ours[0]:,.0f} | {ours[1]:.2f} | {ours[2]:.2f} | {ours[3]:.0f} |",
            f"| bare aiohttp, same bytes (reference) | {bare[0]:,.0f} | {bare[1]:.2f} | {bare[2]:.2f} "
            f"| {bare[3]:.0f} |",
            f"| bare aiohttp + the service's guard and headers | {guarded[0]:,.0f} | {guarded[1]:.2f} "
            f"| {guarded[2]:.2f} | {guarded[3]:.0f} |",
            f"| **ours / bare** | **{ours[0] / bare[0]:.2f}x** | {ours[1] / bare[1]:.2f}x | {ours[2] / bare[2]:.2f}x "
            f"| {ours[3] / max(bare[3], 0.001):.2f}x |",
            f"| bare + guard / bare (the protections alone) | {guarded[0] / bare[0]:.2f}x "
            f"| {guarded[1] / bare[1]:.2f}x | {guarded[2] / bare[2]:.2f}x | {guarded[3] / max(bare[3], 0.001):.2f}x |",
            "",
        ]
    )


FIELDS = ("rps", "p50_ms", "p99_ms", "cpu_us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs of each side per figure (default 3)")
    parser.add_argument("--jobs", type=int, default=100, help="jobs of the GET /api/jobs figure (default 100)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--code", type=Path, default=None, help="a checkout to run the service from")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    said = subprocess.run(["wrk", "--version"], check=False, capture_output=True, text=True).stdout
    wrk_version = said.split("[")[0].strip()
    started = time.monotonic()
    figures = []
    with tempfile.TemporaryDirectory(prefix="status-wrk-") as folder:
        root = Path(folder)
        for title, jobs, path in (
            ("1. One job's status", 0, "/api/snapshot/status"),
            (f"2. Every job's status, {args.jobs} jobs", args.jobs, "/api/jobs"),
        ):
            proc = service(root / f"svc{jobs}", args.code, jobs)
            try:
                figures.append(measure(title, proc, path, root, args))
            finally:
                proc.stop()
    print(f"## The status under wrk (`bench/status_wrk.py`, {time.strftime('%Y-%m-%d')})\n")
    print(
        f"`wrk -t1 -c{args.connections} -d{args.seconds}s --latency`, {args.rounds} rounds alternating ours and "
        f"the bare app; {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"at the end, {time.monotonic() - started:.0f} s in all; Python {platform.python_version()}, "
        f"aiohttp {version('aiohttp')}, {wrk_version}; the service imports {imported_from(args.code)}\n"
    )
    for figure in figures:
        print(table(figure))


if __name__ == "__main__":
    main()
