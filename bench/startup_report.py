"""The figures of ``bench/startup.py`` and the Markdown section it prints: each start beside the bare aiohttp
app's (and, with ``--before``, beside the other checkout's), as ratios."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.jobs_report import ratio

LABELS = {
    "fresh": "service, fresh data folder (its first run starts)",
    "history": "service, data folder with history",
    "bare": "bare aiohttp app (reference)",
    "floor": "bare app + watchdog observer + the history read (the shape's floor)",
    "fresh-before": "service before, fresh data folder",
    "history-before": "service before, data folder with history",
}
RATIOS = (
    ("fresh", "bare"),
    ("history", "bare"),
    ("floor", "bare"),
    ("history", "floor"),
    ("fresh-before", "bare"),
    ("history-before", "bare"),
    ("fresh", "fresh-before"),
    ("history", "history-before"),
)
"""The ratio rows printed, where both of a pair were measured."""


@dataclass(frozen=True)
class Start:
    """One spawn: ms to the first ``/health`` 200, and the process then."""

    health_ms: float
    cpu_s: float
    threads: int
    rss_mib: float


@dataclass(frozen=True)
class Idle:
    wakeups_per_minute: float
    cpu_s_per_minute: float
    rss_mib: float
    threads: int
    by_name: list[tuple[str, int, float]]


@dataclass(frozen=True)
class Results:
    began: float
    loads: tuple[tuple[float, ...], ...]
    """The load average before and after."""
    found: list[str]
    """Where the services' ``orchestrator`` came from (the service's, then the one before's)."""
    tries: dict[str, list[Start]]
    idles: dict[str, Idle]


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def markdown(args: argparse.Namespace, results: Results) -> str:
    loads = " before, ".join(" / ".join(f"{v:.2f}" for v in load) for load in results.loads)
    bytecode = (
        "cached (`PYTHONPYCACHEPREFIX` of this run, filled by one start of each kind first)"
        if args.bytecode == "cached"
        else "`PYTHONDONTWRITEBYTECODE=1`: the checkout's modules compiled at each start"
    )
    code = f"`{results.found[0]}`" + (f"; before: `{results.found[1]}`" if len(results.found) > 1 else "")
    out = [
        "## Start-up and idle: spawn -> `/health` 200, RSS, threads, wakeups (`bench/startup.py`)",
        "",
        "- Command: `python bench/startup.py" + "".join(f" {a}" for a in sys.argv[1:]) + "`",
        f"- Date: {datetime.fromtimestamp(results.began, UTC):%Y-%m-%dT%H:%M:%SZ} "
        f"(took {time.time() - results.began:.0f} s)",
        f"- nproc: {os.cpu_count()}; python {platform.python_version()}; load average 1/5/15 min: {loads} after",
        f"- The service's code: {code}; its history: {args.history} runs with their logs (the last just now)",
        f"- Bytecode: {bytecode}",
        "",
    ]
    return "\n".join(out + start_table(args, results.tries) + [""] + idle_table(args, results.idles))


def start_table(args: argparse.Namespace, tries: dict[str, list[Start]]) -> list[str]:
    def med(kind: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in tries[kind])

    out = [
        f"### 1. Spawn -> `/health` 200, ms ({args.rounds} tries each, interleaved)",
        "",
        "| process | median | p90 | min | CPU s at the 200 | threads | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ms = {kind: [s.health_ms for s in runs] for kind, runs in tries.items()}
    for kind in tries:
        out.append(
            f"| {LABELS[kind]} | {med(kind, 'health_ms'):.1f} | {p90(ms[kind]):.1f} | {min(ms[kind]):.1f} "
            f"| {med(kind, 'cpu_s'):.2f} | {med(kind, 'threads'):.0f} | {med(kind, 'rss_mib'):.1f} |"
        )
    for a, b in RATIOS:
        if a in tries and b in tries:
            out.append(
                f"| **{a} / {b}** | **{ratio(med(a, 'health_ms'), med(b, 'health_ms'))}** "
                f"| {ratio(p90(ms[a]), p90(ms[b]))} | {ratio(min(ms[a]), min(ms[b]))} "
                f"| {ratio(med(a, 'cpu_s'), med(b, 'cpu_s'))} | | {ratio(med(a, 'rss_mib'), med(b, 'rss_mib'))} |"
            )
    return out


def idle_table(args: argparse.Namespace, idles: dict[str, Idle]) -> list[str]:
    out = [
        f"### 2. Idle: {args.idle_seconds:g} s, all at once, {args.settle:g} s after they answered",
        "",
        "| process | wakeups / min | CPU s / min | RSS MiB | threads |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, i in idles.items():
        out.append(
            f"| {LABELS[kind]} | {i.wakeups_per_minute:.1f} | {i.cpu_s_per_minute:.3f} | {i.rss_mib:.1f} "
            f"| {i.threads} |"
        )
    for a, b in RATIOS:
        if a in idles and b in idles:
            out.append(
                f"| **{a} / {b}** | | | **{ratio(idles[a].rss_mib, idles[b].rss_mib)}** "
                f"| {ratio(idles[a].threads, idles[b].threads)} |"
            )
    woke = ", ".join(f"`{n}` x{c}: {w:.1f}" for n, c, w in idles["history"].by_name if w) or "none"
    return [*out, "", f"Threads of the service that woke in the window: {woke}."]
