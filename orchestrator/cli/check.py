"""``check``: the settings and the jobs checked as ``serve`` checks them, without starting anything (no data
folder, no port, no job), and each job printed with its command, its schedule and its first three runs were
the service started now. Exit 0; or one line on stderr and 2, as ``serve`` would end."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from datetime import datetime, tzinfo

from orchestrator.cli.options import option, refuse_job_options, settings_from
from orchestrator.cli.startup import check_command, read_jobs_file
from orchestrator.core.calendar import CronSchedule
from orchestrator.core.events import utcnow
from orchestrator.core.printable import printable
from orchestrator.core.schedule import first_runs
from orchestrator.jobsfile import JobConfig, job_from_settings, local_zone, timing_of

SHOWN_RUNS = 3


def cmd_check(args: argparse.Namespace) -> int:
    refuse_job_options(args)
    settings = settings_from(args)
    path = option("--jobs").value(args)
    now, zone = utcnow(), local_zone()
    if path is None:
        check_command(settings.job.command)
        print("No jobs file: one job, from the flags and variables")
        print("\n".join(describe(job_from_settings(settings), now=now, zone=zone)))
        return 0
    jobs = read_jobs_file(path)
    parallel = f"at most {jobs.max_parallel} at once" if jobs.max_parallel else "no limit on runs at once"
    count = f"{len(jobs.jobs)} job{'s' if len(jobs.jobs) != 1 else ''}"
    print(printable(f"{path}: {count}, the default job {jobs.default_job}, {parallel}"))
    for job in jobs.jobs:
        print("\n".join(describe(job, now=now, zone=zone)))
    return 0


def describe(job: JobConfig, *, now: datetime, zone: tzinfo) -> list[str]:
    """A job's lines: its name, command, schedule and next runs (ISO, on the clock of its zone; an interval
    job's on ``zone``, the machine's)."""
    command = shlex.join(job.command) + (f"  (in {job.cwd})" if job.cwd is not None else "")
    lines = [job.name, f"  command:  {command}", f"  schedule: {_schedule(job)}"]
    timing = timing_of(job, since=now)
    if timing is not None and not job.paused:
        shown_zone = timing.zone if isinstance(timing, CronSchedule) else zone
        runs = [_when(run, now, shown_zone) for run in first_runs(timing, SHOWN_RUNS, start=now)]
        lines.append(f"  next:     {', '.join(runs)}")
    return [printable(line) for line in lines]


def _schedule(job: JobConfig) -> str:
    parts: list[str] = []
    if job.cron is not None:
        parts.append(f"cron {job.cron!r} in {job.timezone or 'the local time zone'}")
    elif job.interval_minutes is not None:
        parts.append(f"every {_minutes(job.interval_minutes)}")
    else:
        parts.append("none, runs when triggered")
    if job.after:
        parts.append(f"also after each completed run of {_names(job.after)}")
    if job.paused:
        parts.append("paused (no automatic runs until resumed)")
    if job.cooldown_minutes and (job.cron is not None or job.interval_minutes is not None):
        parts.append(f"{_minutes(job.cooldown_minutes)} quiet after a manual run")
    return "; ".join(parts)


def _when(run: datetime, now: datetime, zone: tzinfo) -> str:
    return "at start" if run <= now else run.astimezone(zone).isoformat(timespec="seconds")


def _minutes(value: float) -> str:
    return f"{value:g} minute{'' if value == 1 else 's'}"


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
