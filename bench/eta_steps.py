"""How far off the estimated finish is for a job whose steps are uneven: before steps (the job's percent, else the
median run) and with them (the median time of the current step and of those still to come).

    python bench/eta_steps.py [--duration 1200] [--steps 15] [--long-share 0.6] [--long-at 5,1,15]
                              [--earlier 10] [--trials 50] [--run-jitter 0.15] [--step-jitter 0.1] [--seed 1]

The job has ``--steps`` steps; one of them (the ``--long-at``-th, counted from 1) takes ``--long-share`` of the
run, the others share the rest unevenly (weights 1 to 5). Like a real job it counts its percent in steps: as
step ``i`` begins (``i`` steps done, from 0) it reports ``i / steps * 100`` % and the step's name. Before the
first step, the job starts up for half a second (the service's own ``Starting...`` step). Each run of it is
slower or faster as a whole (x U(1 - r, 1 + r), ``--run-jitter``) and each step again (x U(1 - s, 1 + s),
``--step-jitter``).

Each trial records ``--earlier`` completed runs, with their steps, in a fresh run history (SQLite), starts the
recent runs and the estimator the service uses (``orchestrator/ops/recent.py``, ``orchestrator/ops/estimator.py``;
the history is read once, on a worker thread, as at start-up), then plays one more run on a fake clock through
the runner's step tracker. At every report it asks for the status document's ``eta``, as the service does when
it publishes, and it reads the ``eta`` at 25, 50 and 75 % of that run's time. *Before*: the estimator is told no
steps (what it did before it knew of them: the ``progress`` basis, else ``history``). *After*: it is told the
run's steps so far, as the service tells it.

Prints a Markdown section: per position of the long step and per point, the basis used and the error
``|estimated end - actual end|`` as % of the run's duration and in seconds (median and worst over the trials).
Exits 1 if the estimate with steps did not come from the steps at every point.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.events import RunStatus, Source, Trigger, parse_iso
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import STARTING, Step, StepReport, StepTracker
from orchestrator.live.progress import Progress
from orchestrator.ops.estimator import FinishEstimator
from orchestrator.ops.recent import RecentRuns
from orchestrator.store.history import SqliteHistory

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STARTUP_SECONDS = 0.5
POINTS = (0.25, 0.50, 0.75)


@dataclass(frozen=True)
class Job:
    """The job's usual step durations (seconds), and how much a run and a step vary."""

    durations: tuple[float, ...]
    run_jitter: float
    step_jitter: float

    @classmethod
    def uneven(cls, args: argparse.Namespace, long_at: int) -> Job:
        others = [1 + (k * 7) % 5 for k in range(args.steps - 1)]  # 1 to 5, in no order
        rest = args.duration * (1 - args.long_share)
        durations = [rest * w / sum(others) for w in others]
        durations.insert(long_at - 1, args.duration * args.long_share)
        return cls(tuple(durations), args.run_jitter, args.step_jitter)

    def one_run(self, rng: random.Random) -> list[float]:
        run = rng.uniform(1 - self.run_jitter, 1 + self.run_jitter)
        return [d * run * rng.uniform(1 - self.step_jitter, 1 + self.step_jitter) for d in self.durations]


def name(i: int) -> str:
    return f"step {i + 1:02}"


def reports(started: datetime, durations: Sequence[float]) -> list[tuple[datetime, StepReport]]:
    """When the job reports what: entering step ``i``, ``i / n * 100`` % and its name."""
    found, at = [], started + timedelta(seconds=STARTUP_SECONDS)
    for i, took in enumerate(durations):
        found.append((at, StepReport(percent=100 * i / len(durations), step=name(i))))
        at += timedelta(seconds=took)
    return found


def completed_steps(started: datetime, durations: Sequence[float]) -> tuple[Step, ...]:
    """An earlier run's steps, as the runner's tracker records them."""
    tracker = StepTracker()
    tracker.begin(STARTING, started)
    for at, report in reports(started, durations):
        tracker.report(report, at)
    return tracker.finish(started + timedelta(seconds=STARTUP_SECONDS + sum(durations)), 100)


def record(n: int, started: datetime, took: float | None) -> RunRecord:
    return RunRecord(
        f"{started:%Y%m%dT%H%M%SZ}-{n:06x}",
        (Trigger(Source.TIMER, started),),
        started,
        status=RunStatus.COMPLETED if took is not None else RunStatus.RUNNING,
        finished_at=started + timedelta(seconds=took) if took is not None else None,
    )


@dataclass(frozen=True)
class Seen:
    basis: str
    error_seconds: float
    error_percent: float


async def trial(job: Job, earlier: int, rng: random.Random, folder: Path) -> tuple[list[Seen], list[Seen]]:
    """One trial: ``earlier`` runs recorded, then one played; what the ETA was at each point, before and after."""
    history = SqliteHistory(folder / "runs.sqlite3")
    for n in range(earlier):
        started = T0 + timedelta(hours=n)
        durations = job.one_run(rng)
        history.record(record(n, started, STARTUP_SECONDS + sum(durations)), steps=completed_steps(started, durations))
    recent = RecentRuns(history)
    serving = asyncio.create_task(recent.serve())
    try:
        await recent.ready()
        return play(job.one_run(rng), T0 + timedelta(hours=earlier), recent)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


def play(durations: list[float], started: datetime, recent: RecentRuns) -> tuple[list[Seen], list[Seen]]:
    run = record(10**6, started, None)
    ends = started + timedelta(seconds=STARTUP_SECONDS + sum(durations))
    length = (ends - started).total_seconds()
    before, after = FinishEstimator(recent), FinishEstimator(recent)
    tracker = StepTracker()
    tracker.begin(STARTING, started)
    progress = Progress(RunStatus.RUNNING, STARTING, 0, started_at=started, run_id=run.run_id)

    def asked(now: datetime) -> tuple[Seen, Seen]:
        """Both estimates, as a status document built at ``now`` would carry them."""
        seen = []
        for estimator, steps in ((before, ()), (after, tracker.steps())):
            eta = estimator.status_field(run, progress, now, steps)
            finish_at = parse_iso(eta["finishAt"]) if eta else None
            error = abs((finish_at - ends).total_seconds()) if finish_at else float("nan")
            seen.append(Seen(eta["basis"] if eta else "none", error, 100 * error / length))
        return seen[0], seen[1]

    asked(started)  # the service publishes as the run starts
    points = [started + timedelta(seconds=length * f) for f in POINTS]
    events = sorted([(at, 0, report) for at, report in reports(started, durations)] + [(at, 1, None) for at in points])
    found_before, found_after = [], []
    for at, is_point, report in events:
        if report is not None:
            tracker.report(report, at)
            progress = replace(progress, progress=report.percent or 0, step=report.step or progress.step)
        one, two = asked(at)  # on each report the service publishes; at a point, the page reads it
        if is_point:
            found_before.append(one)
            found_after.append(two)
    return found_before, found_after


def summary(seen: list[Seen]) -> tuple[str, str, str]:
    bases = collections.Counter(s.basis for s in seen)
    basis = ", ".join(f"{b} {n}" if len(bases) > 1 else b for b, n in bases.most_common())
    percents = [s.error_percent for s in seen]
    seconds = [s.error_seconds for s in seen]
    return (
        basis,
        f"{statistics.median(percents):.1f} ({max(percents):.1f})",
        f"{statistics.median(seconds):.0f} ({max(seconds):.0f})",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=1200, help="seconds a usual run takes (default 1200)")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--long-share", type=float, default=0.6)
    parser.add_argument("--long-at", default="5,1,15", help="positions of the long step, counted from 1")
    parser.add_argument("--earlier", type=int, default=10, help="completed runs before the one measured")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--run-jitter", type=float, default=0.15)
    parser.add_argument("--step-jitter", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    positions = [int(p) for p in args.long_at.split(",")]
    began = time.perf_counter()
    rows, all_steps = [], True
    for long_at in positions:
        job = Job.uneven(args, long_at)
        rng = random.Random(f"{args.seed}-{long_at}")
        per_point: list[tuple[list[Seen], list[Seen]]] = [([], []) for _ in POINTS]
        for _ in range(args.trials):
            with tempfile.TemporaryDirectory() as folder:
                before, after = asyncio.run(trial(job, args.earlier, rng, Path(folder)))
            for index, (one, two) in enumerate(zip(before, after, strict=True)):
                per_point[index][0].append(one)
                per_point[index][1].append(two)
        for point, (before_seen, after_seen) in zip(POINTS, per_point, strict=True):
            all_steps = all_steps and all(s.basis == "steps" for s in after_seen)
            rows.append((long_at, point, summary(before_seen), summary(after_seen)))
    took = time.perf_counter() - began
    print("## ETA from steps (`bench/eta_steps.py`)")
    print()
    print(f"- Command: `{' '.join(['python bench/eta_steps.py', *sys.argv[1:]])}`")
    print(f"- Date: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} (took {took:.1f} s); python {sys.version.split()[0]}")
    print(
        f"- The job: {args.steps} steps, a usual run {args.duration:g} s, one step {args.long_share:.0%} of it; "
        f"{args.earlier} completed runs before the one measured; each run x U(1 +- {args.run_jitter:g}), each step "
        f"x U(1 +- {args.step_jitter:g}); {args.trials} trials per position of the long step"
    )
    print()
    print("Error of the estimated end, |estimated - actual| at 25, 50 and 75 % of the run's time: median (worst)")
    print()
    print("| long step | at | before: basis | before: % of the run | before: s | after: basis | after: % | after: s |")
    print("|---:|---:|---|---:|---:|---|---:|---:|")
    for long_at, point, (b_basis, b_pct, b_s), (a_basis, a_pct, a_s) in rows:
        print(
            f"| {long_at} of {args.steps} | {point:.0%} | {b_basis} | {b_pct} | {b_s} | {a_basis} | {a_pct} | {a_s} |"
        )
    return 0 if all_steps else 1


if __name__ == "__main__":
    sys.exit(main())
