"""What several jobs cost, on real service processes (``python -m orchestrator serve --jobs FILE``, this checkout
first on ``PYTHONPATH``), each figure beside its reference from the same run:

1. **Start**: spawn -> ``/health`` answers 200 and the service has logged ``N jobs; triggers: ...`` (every job
   started), ``--jobs`` jobs vs the same service with 1 job; median of ``--rounds`` (the two alternate).
2. **Reload**: SIGHUP after the jobs file was edited (10 % changed, 5 % added, 5 % removed) -> the line ``jobs
   file read again: ...``, and -> the last ``job X changed`` / ``job X removed`` line (the replaced jobs run
   again), vs a SIGHUP that changes nothing; also vs the 1-job start.
3. **Idle**: both services at once, nothing due for hours: over ``--idle-seconds`` (after ``--settle``), the
   wakeups of the whole process (voluntary + involuntary context switches of all threads, ``/proc``), CPU time,
   RSS and threads; the threads that woke, by name.
4. **Status under load**: ``--running`` of the jobs run (a trigger file each; the job prints ``PROGRESS`` ten
   times a second) while ``--probes`` status requests of every job (``GET /api/jobs``; where the service has no
   such route, each job's ``/api/jobs/{job}/status``; else the default job's ``/api/snapshot/status``) alternate
   with ``GET /health`` (the reference) on one connection; the same with nothing running.

    python bench/jobs.py [--jobs 100] [--rounds 5] [--idle-seconds 30] [--running 20] [--probes 200]

Prints a Markdown section for ``bench/RESULTS.md``. Every job is seeded as having run just now, so nothing runs
unless the benchmark asks. A checkout whose ``serve`` has no SIGHUP handler is reloaded through
``bench/jobs_hup.py`` (said in the output).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import jobs_report as report
from bench.jobs_fleet import DEFAULT_JOB, JOB, Edit, Job, edited, fleet, seed_state, write_jobs_file
from bench.jobs_proc import (
    Prober,
    Service,
    ThreadSample,
    catches,
    cpu_seconds,
    rss_mib,
    sample_threads,
    threads,
    wakeups,
)


def launch(root: Path, jobs: list[Job], *, names_threads: bool = False, hup_shim: bool = False) -> Service:
    """The files of a service with ``jobs`` (every one, and those an edit adds, ran just now), and the service."""
    ctl = root / "ctl"
    ctl.mkdir(parents=True, exist_ok=True)
    (ctl / "job.py").write_text(JOB)
    write_jobs_file(ctl / "jobs.toml", jobs, [sys.executable, str(ctl / "job.py")])
    seed_state(root / "svc" / "data", [j.name for j in edited(jobs).jobs] + [j.name for j in jobs])
    return Service(root, names_threads=names_threads, hup_shim=hup_shim)


def ready(service: Service, count: int) -> report.Start:
    """Wait until ``/health`` answers 200 and every job has started; the times from the spawn."""
    listening = service.wait_lines("listening on")
    if (status := service.get("/health")) != 200:
        raise RuntimeError(f"/health answered {status}\n{service.tail()}")
    health = time.perf_counter()
    started = service.wait_lines(f"{count} job{'' if count == 1 else 's'}; triggers: ")
    if any(": started pid " in line for _, line in service.lines):
        raise RuntimeError(f"a job ran at start: every job should have run just now\n{service.tail()}")
    pid = service.pid

    def ms(t: float) -> float:
        return 1000 * (t - service.spawned)

    return report.Start(
        listening_ms=ms(listening),
        jobs_ms=ms(started),
        health_ms=ms(health),
        cpu_s=cpu_seconds(pid),
        threads=threads(pid),
        rss_mib=rss_mib(pid),
    )


def reload_once(service: Service, edit: Edit | None) -> report.Reload:
    """SIGHUP (after writing the edited file, if any) -> ``jobs file read again``, and -> the last job replaced."""
    since = len(service.lines)
    if edit is not None:
        write_jobs_file(service.ctl / "jobs.toml", edit.jobs, [sys.executable, str(service.ctl / "job.py")])
    sent = time.perf_counter()
    os.kill(service.pid, signal.SIGHUP)
    read = service.wait_lines("jobs file read again: ", since=since)
    settled = read
    if edit is not None and (replaced := len(edit.changed) + len(edit.removed)):
        settled = service.wait_lines("removed; its history stays", "changed: its next run", count=replaced, since=since)
    line = next(text for t, text in service.lines[since:] if "jobs file read again: " in text)
    return report.Reload(1000 * (read - sent), 1000 * (settled - sent), line.split("jobs file read again: ")[1])


def start_and_reload(tmp: Path, args: argparse.Namespace) -> tuple[dict[int, list[report.Start]], report.Reloads]:
    """``--rounds`` starts of each service (the order alternates); after each start of the big one, its reloads."""
    jobs = {count: fleet(count) for count in (1, args.jobs)}
    starts: dict[int, list[report.Start]] = {1: [], args.jobs: []}
    reloads = report.Reloads()
    for round_ in range(args.rounds):
        for count in (1, args.jobs) if round_ % 2 == 0 else (args.jobs, 1):
            service = launch(tmp / f"start-{round_}-{count}", jobs[count])
            try:
                starts[count].append(ready(service, count))
                if count == args.jobs:
                    service = reload_round(tmp / f"reload-{round_}", service, jobs[count], reloads, round_)
            finally:
                service.stop()
        print(f"  round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    return starts, reloads


def reload_round(root: Path, service: Service, jobs: list[Job], reloads: report.Reloads, round_: int) -> Service:
    """A reload that changes nothing and one after an edit, in turns first; the service they went to (a service
    that does not catch SIGHUP is replaced by one started through ``bench/jobs_hup.py``)."""
    if not catches(service.pid, signal.SIGHUP):
        service.stop()
        reloads.shim = True
        service = launch(root, jobs, hup_shim=True)
    try:
        ready(service, len(jobs))
        edit = edited(jobs)
        threads_before = threads(service.pid)
        for kind in ("nothing", "edit") if round_ % 2 == 0 else ("edit", "nothing"):
            done = reload_once(service, edit if kind == "edit" else None)
            (reloads.edits if kind == "edit" else reloads.nothing).append(done)
        time.sleep(1)  # the replaced jobs' worker threads end after their units
        reloads.threads.append((threads_before, threads(service.pid)))
    except BaseException:
        service.stop()
        raise
    return service


def idle_sample(service: Service) -> tuple[float, float, float, dict[int, ThreadSample]]:
    pid = service.pid
    return time.perf_counter(), cpu_seconds(pid), rss_mib(pid), sample_threads(pid)


def idle(tmp: Path, args: argparse.Namespace) -> tuple[dict[int, report.Idle], Service]:
    """Both services at once, each thread named; the ``--jobs`` one is left running for the load phase."""
    services = {count: launch(tmp / f"idle-{count}", fleet(count), names_threads=True) for count in (1, args.jobs)}
    try:
        for count, service in services.items():
            ready(service, count)
        time.sleep(args.settle)
        before = {count: idle_sample(s) for count, s in services.items()}
        time.sleep(args.idle_seconds)
        after = {count: idle_sample(s) for count, s in services.items()}
    except BaseException:
        for service in services.values():
            service.stop()
        raise
    services[1].stop()
    result = {}
    for count in services:
        (t0, cpu0, _, threads0), (t1, cpu1, rss, threads1) = before[count], after[count]
        woke = wakeups(threads0, threads1)
        per_minute = 60 / (t1 - t0)
        result[count] = report.Idle(
            wakeups_per_minute=sum(n for _, n in woke.values()) * per_minute,
            cpu_s_per_minute=(cpu1 - cpu0) * per_minute,
            rss_mib=rss,
            threads=len(threads1),
            by_name=report.by_name(woke.values(), per_minute),
            seconds=t1 - t0,
        )
    return result, services[args.jobs]


def status_paths(prober: Prober, names: list[str]) -> tuple[str, list[str]]:
    """What asks for every job's status on this service, in words, and its paths."""
    if prober.status("/api/jobs") == 200:
        return "`GET /api/jobs`", ["/api/jobs"]
    if prober.status(f"/api/jobs/{DEFAULT_JOB}/status") == 200:
        return f"{len(names)} x `GET /api/jobs/{{job}}/status` (no `/api/jobs` here)", [
            f"/api/jobs/{name}/status" for name in names
        ]
    return "`GET /api/snapshot/status`, the default job only (no `/api/jobs` nor `/api/jobs/{job}/status` here)", [
        "/api/snapshot/status"
    ]


def probes(prober: Prober, paths: list[str], count: int) -> tuple[list[float], list[float]]:
    """``count`` status probes and as many of ``/health``, alternating (which goes first alternates too)."""
    status: list[float] = []
    health: list[float] = []
    for i in range(count):
        for first in (True, False):
            if first == (i % 2 == 0):
                status.append(prober.probe(paths))
            else:
                health.append(prober.probe(["/health"]))
    return status, health


def under_load(service: Service, args: argparse.Namespace) -> report.Load:
    names = [j.name for j in fleet(args.jobs)]
    running = names[:: max(1, len(names) // args.running)][: args.running]
    prober = Prober(service.port)
    try:
        mode, paths = status_paths(prober, names)
        quiet = probes(prober, paths, args.probes)
        since = len(service.lines)
        for name in running:
            folder = service.svc / "triggers" / ("" if name == DEFAULT_JOB else name)
            (folder / "bench-load").write_text("load")
        burst = health_until_started(service, prober, since, len(running))
        deadline = time.monotonic() + 60
        while not str(prober.json("/api/snapshot/status")["progress"].get("step")).startswith("step"):  # may poll
            if time.monotonic() > deadline:
                raise RuntimeError(f"the default job shows no progress\n{service.tail()}")
            time.sleep(0.05)
        time.sleep(1)  # the other jobs' first lines
        t0, cpu0 = time.perf_counter(), cpu_seconds(service.pid)
        loaded = probes(prober, paths, args.probes)
        cpu_share = (cpu_seconds(service.pid) - cpu0) / (time.perf_counter() - t0)
        load_threads = sample_threads(service.pid)
        (service.ctl / "stop").write_text("")
        service.wait_lines("completed in", count=len(running), since=since)
    finally:
        prober.close()
        service.stop()
    names_now = report.by_name(((s.name, 0) for s in load_threads.values()), 0)
    return report.Load(mode, len(running), quiet, loaded, cpu_share, len(load_threads), names_now, burst)


def health_until_started(service: Service, prober: Prober, since: int, count: int) -> list[float]:
    """``GET /health`` one after the other from the trigger files' writing until ``count`` runs have started."""
    deadline, times = time.monotonic() + 60, []
    while sum(": started pid " in line for _, line in service.lines[since:]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} runs did not start\n{service.tail()}")
        times.append(prober.probe(["/health"]))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the big service (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="starts of each service, and reloads (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle window (default 30)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after start before the window")
    parser.add_argument("--running", type=int, default=20, help="jobs running in the load phase (default 20)")
    parser.add_argument("--probes", type=int, default=200, help="status and /health requests each (default 200)")
    args = parser.parse_args()
    if args.jobs < 2 or args.rounds < 1 or args.running < 1 or args.probes < 1:
        parser.error("--jobs must be 2 or more, --rounds, --running and --probes 1 or more")
    args.running = min(args.running, args.jobs)
    began, load_before = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        starts, reloads = start_and_reload(Path(tmp), args)
        idles, service = idle(Path(tmp), args)
        print("  idle done", file=sys.stderr)
        load = under_load(service, args)
    command = "python bench/jobs.py" + "".join(f" {a}" for a in sys.argv[1:])
    results = report.Results(command, began, load_before, starts, reloads, idles, load)
    print(report.markdown(args, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
