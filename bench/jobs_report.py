"""The figures of ``bench/jobs.py`` and the Markdown section it prints: each figure beside its reference, as a
ratio."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Start:
    """One start, ms from the spawn: the ``listening on`` line, the ``N jobs; triggers`` line, ``/health`` 200;
    and the process at that moment."""

    listening_ms: float
    jobs_ms: float
    health_ms: float
    cpu_s: float
    threads: int
    rss_mib: float

    @property
    def ready_ms(self) -> float:
        return max(self.jobs_ms, self.health_ms)


@dataclass(frozen=True)
class Reload:
    read_ms: float
    """SIGHUP -> ``jobs file read again: ...``."""
    settled_ms: float
    """SIGHUP -> the last ``job X changed`` / ``job X removed`` line (= ``read_ms`` when none is replaced)."""
    summary: str


@dataclass
class Reloads:
    nothing: list[Reload] = field(default_factory=list)
    edits: list[Reload] = field(default_factory=list)
    threads: list[tuple[int, int]] = field(default_factory=list)
    """Threads before the round's two reloads, and a second after them."""
    shim: bool = False
    """SIGHUP went to ``bench/jobs_hup.py``: the checkout's ``serve`` does not catch it."""


@dataclass(frozen=True)
class Idle:
    wakeups_per_minute: float
    cpu_s_per_minute: float
    rss_mib: float
    threads: int
    by_name: list[tuple[str, int, float]]
    """(thread name, threads of that name, their wakeups a minute), most wakeups first."""
    seconds: float


def by_name(woke: Iterable[tuple[str, int]], per_minute: float) -> list[tuple[str, int, float]]:
    groups: dict[str, list[int]] = {}
    for name, count in woke:
        groups.setdefault(name, []).append(count)
    rows = [(name, len(counts), sum(counts) * per_minute) for name, counts in groups.items()]
    return sorted(rows, key=lambda row: (-row[2], -row[1], row[0]))


@dataclass(frozen=True)
class Load:
    mode: str
    running: int
    quiet: tuple[list[float], list[float]]
    """(status probes, ``/health`` probes), ms, nothing running."""
    loaded: tuple[list[float], list[float]]
    """The same while ``running`` jobs run."""
    cpu_share: float
    """The service's CPU seconds per second during the loaded probes."""
    threads: int
    thread_names: list[tuple[str, int, float]]
    burst: list[float]
    """``/health`` probes (ms) from the trigger files' writing until every run had started."""


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def med(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ratio(a: float, b: float) -> str:
    """``a / b`` to two decimals, or three significant digits below 0.1."""
    if not b:
        return "-"
    return f"{a / b:.2f}" if a / b >= 0.1 else f"{a / b:.2g}"


@dataclass(frozen=True)
class Results:
    command: str
    began: float
    load_before: tuple[float, float, float]
    starts: dict[int, list[Start]]
    reloads: Reloads
    idles: dict[int, Idle]
    load: Load


def markdown(args: argparse.Namespace, results: Results) -> str:
    n, command, began, load_before = args.jobs, results.command, results.began, results.load_before
    starts, reloads, idles, load = results.starts, results.reloads, results.idles, results.load
    out = [
        f"## Several jobs: start, reload, idle, status under load (`bench/jobs.py`, {n} jobs)",
        "",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(began))} (took {time.time() - began:.0f} s)",
        f"- nproc: {os.cpu_count()}; python {platform.python_version()}; load average 1/5/15 min: "
        + f"{' / '.join(f'{v:.2f}' for v in load_before)} before, "
        + f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())} after",
        f"- The {n} jobs: 60 % interval (12 h and more), 30 % calendar (daily, 2-15 h ahead, 5 zones), 10 % manual;"
        " chains interval -> manual -> manual, and every third calendar job after the one before. Each ran just"
        " now (seeded state): nothing is due for hours.",
        "",
        *start_section(n, starts),
        *reload_section(n, starts, reloads),
        *idle_section(args, idles),
        *load_section(args, load),
    ]
    return "\n".join(out)


def start_section(n: int, starts: dict[int, list[Start]]) -> list[str]:
    one, many = starts[1], starts[n]
    columns: list[tuple[str, str]] = [
        ("spawn -> `listening on`", "listening_ms"),
        ("spawn -> every job started", "jobs_ms"),
        ("spawn -> `/health` 200", "health_ms"),
        ("**ready** (both)", "ready_ms"),
        ("CPU s at ready", "cpu_s"),
        ("threads", "threads"),
        ("RSS MiB", "rss_mib"),
    ]

    def row(label: str, starts: list[Start]) -> str:
        return f"| {label} | " + " | ".join(f"{med(getattr(s, a) for s in starts):.1f}" for _, a in columns) + " |"

    ratios = " | ".join(ratio(med(getattr(s, a) for s in many), med(getattr(s, a) for s in one)) for _, a in columns)
    per_round = [m.ready_ms / o.ready_ms for o, m in zip(one, many, strict=True)]
    after = [m.ready_ms - m.listening_ms for m in many], [o.ready_ms - o.listening_ms for o in one]
    return [
        f"### 1. Start: spawn -> ready, ms (median of {len(one)} rounds; the two services alternate)",
        "",
        "| service | " + " | ".join(c for c, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
        row("1 job (reference)", one),
        row(f"{n} jobs", many),
        f"| **{n} jobs / 1 job** | {ratios} |",
        "",
        f"Ready, {n} jobs / 1 job, per round: {', '.join(f'{r:.2f}' for r in per_round)} (median "
        f"{med(per_round):.2f}). From `listening on` to ready (the jobs' own start, imports done): "
        f"{med(after[0]):.1f} ms vs {med(after[1]):.1f} ms, {ratio(med(after[0]), med(after[1]))}x.",
        "",
    ]


def reload_section(n: int, starts: dict[int, list[Start]], reloads: Reloads) -> list[str]:
    start_one = med(s.ready_ms for s in starts[1])
    nothing, edits = reloads.nothing, reloads.edits
    how = (
        "SIGHUP through `bench/jobs_hup.py` (this checkout's `serve` does not catch SIGHUP: the shim adds a handler"
        " that calls `Orchestrator.reload()`, as `POST /api/reload` and SIGHUP are to)"
        if reloads.shim
        else "SIGHUP, the service's own handler"
    )

    def row(label: str, done: list[Reload]) -> str:
        read, settled = med(r.read_ms for r in done), med(r.settled_ms for r in done)
        return f"| {label} | {read:.1f} | {settled:.1f} | {ratio(read, start_one)} | {done[0].summary} |"

    read_ratio = ratio(med(r.read_ms for r in edits), med(r.read_ms for r in nothing))
    settled_ratio = ratio(med(r.settled_ms for r in edits), med(r.settled_ms for r in nothing))
    return [
        f"### 2. Reload with {n} jobs, ms from the signal (median of {len(edits)} rounds)",
        "",
        f"Reloaded by {how}. In each round the two reloads alternate in order.",
        "",
        "| reload | -> `jobs file read again` | -> last job replaced | read / 1-job start | summary logged |",
        "|---|---:|---:|---:|---|",
        row("nothing changed (reference)", nothing),
        row("edited", edits),
        f"| **edited / nothing** | {read_ratio} | {settled_ratio} | | |",
        "",
        f"1-job start (ready) in the same run: {start_one:.1f} ms. Threads before the two reloads -> a second after"
        f" them, per round: {', '.join(f'{a} -> {b}' for a, b in reloads.threads)}.",
        "",
    ]


def idle_section(args: argparse.Namespace, idles: dict[int, Idle]) -> list[str]:
    one, many = idles[1], idles[args.jobs]
    fields = [
        ("wakeups / min", "wakeups_per_minute", ".1f"),
        ("CPU s / min", "cpu_s_per_minute", ".3f"),
        ("RSS MiB", "rss_mib", ".1f"),
        ("threads", "threads", "d"),
    ]

    def row(label: str, idle: Idle) -> str:
        return f"| {label} | " + " | ".join(format(getattr(idle, a), f) for _, a, f in fields) + " |"

    ratios = " | ".join(ratio(getattr(many, a), getattr(one, a)) for _, a, _ in fields)
    groups = ", ".join(f"`{name}` x{count}: {rate:.1f}" for name, count, rate in many.by_name)
    return [
        f"### 3. Idle: {many.seconds:.0f} s, both services at once, {args.settle:g} s after they were ready",
        "",
        "Wakeups: voluntary + involuntary context switches of every thread (`/proc/PID/task/*/status`); CPU:"
        " `utime + stime` (`/proc/PID/stat`). Each thread is named in `/proc` by `bench/threadnames/`.",
        "",
        "| service | " + " | ".join(c for c, _, _ in fields) + " |",
        "|---|" + "---:|" * len(fields),
        row("1 job (reference)", one),
        row(f"{args.jobs} jobs", many),
        f"| **{args.jobs} jobs / 1 job** | {ratios} |",
        "",
        f"Threads of the {args.jobs}-job service by name, with their wakeups a minute: {groups}.",
        "",
        "Of the 1-job service: " + ", ".join(f"`{name}` x{count}: {rate:.1f}" for name, count, rate in one.by_name),
        "",
    ]


def load_section(args: argparse.Namespace, load: Load) -> list[str]:
    def row(label: str, probes: tuple[list[float], list[float]]) -> str:
        status, health = probes
        return (
            f"| {label} | {med(status):.2f} | {p99(status):.2f} | {med(health):.2f} | {p99(health):.2f} | "
            f"**{ratio(med(status), med(health))}** | {ratio(p99(status), p99(health))} |"
        )

    return [
        f"### 4. Status of every job, {args.jobs} jobs, {load.running} running: ms over {args.probes} probes each",
        "",
        f"Status probe: {load.mode}; alternating with `GET /health` (the reference) on one keep-alive connection."
        f" The running jobs print `PROGRESS` ten times a second.",
        "",
        "| service | status median | status p99 | `/health` median | `/health` p99 | status / health median | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row("nothing running", load.quiet),
        row(f"{load.running} jobs running", load.loaded),
        "",
        f"While the {load.running} runs started (trigger files written -> the last `started pid` line),"
        f" `/health` answered {len(load.burst)} times: median {med(load.burst or [0]):.2f} ms, worst"
        f" {max(load.burst or [0]):.2f} ms; median / the median with nothing running:"
        f" {ratio(med(load.burst or [0]), med(load.quiet[1]))}.",
        "",
        f"Status median, {load.running} running / nothing running: {ratio(med(load.loaded[0]), med(load.quiet[0]))};"
        f" `/health`: {ratio(med(load.loaded[1]), med(load.quiet[1]))}. The service used {load.cpu_share:.2f} CPU s"
        f" a second during the loaded probes, with {load.threads} threads: "
        + ", ".join(f"`{name}` x{count}" for name, count, _ in sorted(load.thread_names, key=lambda r: -r[1]))
        + ".",
        "",
    ]
