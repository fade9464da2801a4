"""What the service's start and its idle cost, on real processes, each beside a bare aiohttp app from the same run:

1. **Spawn -> ``/health`` 200**: ``python -m orchestrator serve`` as a user runs it (the bundled sample job, no
   options but its port and folders) with a fresh data folder (its first run starts at once), and with a data
   folder holding ``--history`` runs (their logs too; the last ran just now, so nothing is due); the reference: a
   bare aiohttp app (``python -c``, one ``/health`` route, ``web.run_app``) spawned the same way. ``/health`` is
   asked on a new connection every 2 ms from the spawn until one answers 200. ``--rounds`` tries of each, the three
   interleaved (the order turns each round); medians, p90 and the ratios.
2. **Idle**: the service with history, the bare app and the floor of the shape (the bare app with a watchdog
   observer and the same history opened and read: ``FLOOR``) at once, ``--settle`` seconds after both answered; over
   ``--idle-seconds``: RSS (``VmRSS``), threads, wakeups (voluntary + involuntary context switches of every thread,
   ``/proc/PID/task/*/status``) and CPU time (``/proc/PID/stat``).

    python bench/startup.py [--rounds 20] [--history 100] [--idle-seconds 60] [--settle 3] [--code /work/base]
                            [--bytecode cached|source] [--before /work/base]

Full size takes about two minutes (one of them the idle window). ``--code`` puts another checkout first on the
processes' ``PYTHONPATH`` (the before figure); the module the service imports is said in the output.
``--before`` adds that checkout's service (fresh, and with history) to the tries and to the idle window, in turn
with the rest, and prints the ratios to it (about three minutes at full size).
``--bytecode cached`` (the default): every process reads its modules' bytecode from a cache of this run
(``PYTHONPYCACHEPREFIX``), written by one start of each kind before the tries, as on a machine where Python may
write its ``__pycache__``; ``source``: ``PYTHONDONTWRITEBYTECODE=1`` and no cache, so each start compiles the
checkout's modules again (the standard library's and the installed packages' bytecode is used as installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.jobs_fleet import seed_state
from bench.jobs_proc import (
    REPO,
    Service,
    ThreadSample,
    cpu_seconds,
    free_port,
    rss_mib,
    sample_threads,
    threads,
    wakeups,
)
from bench.jobs_report import by_name
from bench.startup_report import Idle, Results, Start, markdown
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import Step
from orchestrator.store.history import SqliteHistory
from orchestrator.store.logfiles import LogFiles

BARE = """\
import sys
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
FLOOR = """\
import sqlite3, sys
from aiohttp import web
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

data = sys.argv[2]
observer = Observer()
observer.schedule(FileSystemEventHandler(), data)
observer.start()
with sqlite3.connect(f"{data}/runs.sqlite3") as db:
    db.execute("PRAGMA quick_check").fetchone()  # as orchestrator/store/schema.py checks it
    recent = db.execute("SELECT record FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 100").fetchall()
db.close()

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
"""The floor of the service's shape at idle: the bare app, plus a watchdog observer on a folder (as the service
watches its data folder) and the same history opened, checked and its last 100 runs read (then closed): what
an idle service costs before any code of its own."""
KINDS = ("fresh", "history", "bare")
BEFORE = ("fresh-before", "history-before")
"""With ``--before``: the service of the other checkout, with a fresh data folder and with history."""
STEPS = ("Preparing", "Fetching repositories", "Building snapshot", "Writing snapshot")


# ------------------------------------------------------------------------------------------------ the folders
def seed_history(data_dir: Path, runs: int) -> None:
    """``runs`` runs of the default job, 30 minutes apart, the last just now, each with four steps and a log of
    200 lines; the state says the last ran just now."""
    seed_state(data_dir, ["snapshot"])
    history, files = SqliteHistory(data_dir / "runs.sqlite3"), LogFiles(data_dir)
    (data_dir / "logs").mkdir(exist_ok=True)
    now = datetime.now(UTC)
    for n in range(runs):
        started = now - timedelta(minutes=30 * (runs - 1 - n), seconds=25)
        failed = n % 10 == 0
        run = RunRecord(
            run_id=f"{started:%Y%m%dT%H%M%SZ}-{n:06x}",
            triggers=(Trigger(Source.TIMER, started, "scheduled"),),
            started_at=started,
            status=RunStatus.ERROR if failed else RunStatus.COMPLETED,
            finished_at=started + timedelta(seconds=20),
            exit_code=1 if failed else 0,
            error="exited with code 1" if failed else None,
            step=STEPS[-1],
        )
        steps = tuple(
            Step(name, started + timedelta(seconds=5 * i), started + timedelta(seconds=5 * i + 5), 25 * i, 25 * i + 25)
            for i, name in enumerate(STEPS)
        )
        path = files.relative_path(run.run_id)
        (data_dir / path).write_text("".join(f"PROGRESS {k // 2} fetched repository {k}\n" for k in range(200)))
        history.record(run, path, steps)
    for path in [data_dir, *data_dir.rglob("*")]:  # as the service leaves its folder: owner-only
        path.chmod(0o700 if path.is_dir() else 0o600)


def kinds_of(args: argparse.Namespace) -> tuple[str, ...]:
    return KINDS + (BEFORE if args.before is not None else ())


def code_of(kind: str, args: argparse.Namespace) -> Path:
    return Path(args.before if kind.endswith("-before") else args.code)


def spawn(root: Path, kind: str, code: Path, template: Path) -> Service:
    """A service (``fresh``, ``history``: a copy of ``template``; ``-before``: the same) or the bare app, in a
    folder of its own."""
    root.mkdir(parents=True)
    port = free_port()
    if kind == "bare":
        return Service(root, argv=["-c", BARE, str(port)], port=port, code=code)
    if kind == "floor":
        shutil.copytree(template, root / "data")
        return Service(root, argv=["-c", FLOOR, str(port), str(root / "data")], port=port, code=code)
    svc = root / "svc"
    if kind.startswith("history"):
        shutil.copytree(template, svc / "data")
        (svc / "triggers").mkdir()
    argv = ["-m", "orchestrator", "serve", "--port", str(port)]
    argv += ["--data-dir", str(svc / "data"), "--triggers-dir", str(svc / "triggers")]
    return Service(root, argv=argv, port=port, code=code)


def answered(service: Service) -> float:
    """``/health`` on a new connection every 2 ms until one answers 200; ms from the spawn."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if service.get("/health") == 200:
                return 1000 * (time.perf_counter() - service.spawned)
        except ConnectionError:
            pass
        if service.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no /health 200\n{service.tail()}")
        time.sleep(0.002)


def bytecode(tmp: Path, how: str) -> None:
    """The processes' bytecode: read from (and written to) a cache of this run, or compiled at each start."""
    if how == "cached":
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    else:
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


def starts(tmp: Path, args: argparse.Namespace, template: Path) -> dict[str, list[Start]]:
    kinds = kinds_of(args)
    for kind in kinds:  # not counted: fills the bytecode cache (and the page cache) for every kind
        service = spawn(tmp / f"warm-{kind}", kind, code_of(kind, args), template)
        try:
            answered(service)
        finally:
            service.stop()
    out: dict[str, list[Start]] = {kind: [] for kind in kinds}
    for round_ in range(args.rounds):
        turn = round_ % len(kinds)
        for kind in kinds[turn:] + kinds[:turn]:
            service = spawn(tmp / f"start-{round_}-{kind}", kind, code_of(kind, args), template)
            try:
                ms = answered(service)
                pid = service.pid
                out[kind].append(Start(ms, cpu_seconds(pid), threads(pid), rss_mib(pid)))
            finally:
                service.stop()
        if round_ % 5 == 4:
            print(f"  round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    return out


def sample(pid: int) -> tuple[float, float, dict[int, ThreadSample]]:
    return time.perf_counter(), cpu_seconds(pid), sample_threads(pid)


def idle(tmp: Path, args: argparse.Namespace, template: Path) -> dict[str, Idle]:
    """The service with history and the bare app (and the service before) at once, over the window."""
    kinds = ("history", "bare", "floor") + (("history-before",) if args.before is not None else ())
    services = {kind: spawn(tmp / f"idle-{kind}", kind, code_of(kind, args), template) for kind in kinds}
    try:
        for service in services.values():
            answered(service)
        time.sleep(args.settle)
        before = {kind: sample(s.pid) for kind, s in services.items()}
        time.sleep(args.idle_seconds)
        after = {kind: sample(s.pid) for kind, s in services.items()}
        rss = {kind: rss_mib(s.pid) for kind, s in services.items()}
    finally:
        for service in services.values():
            service.stop()
    out = {}
    for kind in services:
        (t0, cpu0, threads0), (t1, cpu1, threads1) = before[kind], after[kind]
        woke, per_minute = wakeups(threads0, threads1), 60 / (t1 - t0)
        out[kind] = Idle(
            wakeups_per_minute=sum(n for _, n in woke.values()) * per_minute,
            cpu_s_per_minute=(cpu1 - cpu0) * per_minute,
            rss_mib=rss[kind],
            threads=len(threads1),
            by_name=by_name(woke.values(), per_minute),
        )
    return out


def imported_from(code: Path) -> str:
    """Where ``orchestrator`` comes from in the services' environment (the check that ``--code`` holds)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    check = [sys.executable, "-c", "import orchestrator; print(orchestrator.__file__)"]
    done = subprocess.run(check, check=False, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="tries of each of the three (default 20)")
    parser.add_argument("--history", type=int, default=100, help="runs in the data folder with history (100)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle window (default 60)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the first 200 before the window")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout first on PYTHONPATH (default this one)")
    parser.add_argument("--before", type=Path, help="another checkout, its service started in turn with the rest")
    parser.add_argument(
        "--bytecode", choices=("cached", "source"), default="cached", help="cached (default) or compiled each start"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.history < 1 or args.idle_seconds <= 0:
        parser.error("--rounds and --history must be 1 or more, --idle-seconds more than 0")
    args.code = args.code.resolve()
    args.before = args.before.resolve() if args.before is not None else None
    began, load_before = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        tmp = Path(name)
        bytecode(tmp, args.bytecode)
        found = [imported_from(code) for code in (args.code, args.before) if code is not None]
        template = tmp / "history-data"
        seed_history(template, args.history)
        tries = starts(tmp, args, template)
        print("  starts done", file=sys.stderr)
        idles = idle(tmp, args, template)
    print(markdown(args, Results(began, (load_before, os.getloadavg()), found, tries, idles)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
