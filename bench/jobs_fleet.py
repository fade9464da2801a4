"""The jobs of ``bench/jobs.py``: a jobs file of N jobs (60 % interval jobs with intervals of half a day and more,
30 % calendar jobs in five time zones, 10 % manual jobs; some ``after`` chains), its edited version for a reload
(10 % changed, 5 % added, 5 % removed), a state file in which every job ran just now (so nothing is due for
hours), and the job every one of them runs: ``PROGRESS`` ten times a second until a stop file appears.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
DEFAULT_JOB = "job000"
JOB = """\
import os, time
stop = os.environ["BENCH_STOP"]
end = time.monotonic() + float(os.environ.get("BENCH_MAX_SECONDS", "300"))
i = 0
while not os.path.exists(stop) and time.monotonic() < end:
    i += 1
    print(f"PROGRESS {i % 100} step {i // 10}", flush=True)
    time.sleep(0.1)
"""


@dataclass(frozen=True)
class Job:
    """One ``[jobs.NAME]`` table: ``interval`` minutes, or ``cron`` in ``timezone``, or neither (manual)."""

    name: str
    interval: int | None = None
    cron: str | None = None
    timezone: str | None = None
    after: tuple[str, ...] = ()
    env: str | None = None

    @property
    def kind(self) -> str:
        return "interval" if self.interval is not None else "cron" if self.cron is not None else "manual"

    def toml(self, command: list[str]) -> str:
        lines = [f"[jobs.{self.name}]", f"command = {json.dumps(command)}"]
        if self.interval is not None:
            lines.append(f"interval = {self.interval}")
        if self.cron is not None:
            lines += [f'cron = "{self.cron}"', f'timezone = "{self.timezone}"']
        if self.after:
            lines.append(f"after = {json.dumps(list(self.after))}")
        if self.env is not None:
            lines.append(f'env = {{ BENCH_VERSION = "{self.env}" }}')
        return "\n".join(lines)


def name(i: int) -> str:
    return f"job{i:03d}"


def cron_in_hours(i: int, zone: str) -> str:
    """A daily (odd ``i``: weekdays only) time 2 to 15 hours from now on ``zone``'s clock."""
    hour = (datetime.now(ZoneInfo(zone)).hour + 3 + i % 12) % 24
    return f"{i % 60} {hour} * * {'1-5' if i % 2 else '*'}"


def make_job(i: int, kind: str) -> Job:
    if kind == "interval":
        return Job(name(i), interval=720 + i)
    if kind == "cron":
        zone = ZONES[i % len(ZONES)]
        return Job(name(i), cron=cron_in_hours(i, zone), timezone=zone)
    return Job(name(i))


def fleet(count: int) -> list[Job]:
    """``count`` jobs, the first (the default job) an interval job. Chains: manual job 2k runs after interval job
    k and manual job 2k+1 after manual job 2k (interval -> manual -> manual); every third calendar job runs after
    the calendar job before it."""
    intervals = max(1, round(count * 0.6))
    crons = min(count - intervals, round(count * 0.3))
    kinds = ["interval"] * intervals + ["cron"] * crons + ["manual"] * (count - intervals - crons)
    jobs = [make_job(i, kind) for i, kind in enumerate(kinds)]
    manual = [j for j in jobs if j.kind == "manual"]
    cron = [j for j in jobs if j.kind == "cron"]
    chained: dict[str, tuple[str, ...]] = {}
    for k, job in enumerate(manual):
        chained[job.name] = (jobs[k // 2].name,) if k % 2 == 0 else (manual[k - 1].name,)
    for k in range(3, len(cron), 3):
        chained[cron[k].name] = (cron[k - 1].name,)
    return [replace(j, after=chained.get(j.name, ())) for j in jobs]


@dataclass(frozen=True)
class Edit:
    jobs: list[Job]
    changed: list[str]
    added: list[str]
    removed: list[str]


def edited(jobs: list[Job]) -> Edit:
    """The file after an edit: 10 % of the jobs changed (an interval a minute longer, a calendar time a minute
    later, a manual job's variables), 5 % added (of each kind in turn, after the last), 5 % removed (interval
    jobs nobody follows, from the end); at least one of each."""
    count = len(jobs)
    followed = {a for j in jobs for a in j.after}
    candidates = [j.name for j in jobs[1:] if j.kind == "interval" and j.name not in followed]
    removed = candidates[::-1][: max(1, round(count * 0.05))]
    kept = [j for j in jobs if j.name not in removed]
    step = max(1, len(kept) // max(1, round(count * 0.1)))
    changed = [j.name for j in kept[::step]][: max(1, round(count * 0.1))]
    out = [changed_job(job) if job.name in changed else job for job in kept]
    kinds = ("interval", "cron", "manual")
    added = [make_job(count + k, kinds[k % 3]) for k in range(max(1, round(count * 0.05)))]
    return Edit(out + added, changed, [j.name for j in added], removed)


def changed_job(job: Job) -> Job:
    if job.interval is not None:
        return replace(job, interval=job.interval + 1)
    if job.cron is not None:
        minute, rest = job.cron.split(" ", 1)
        return replace(job, cron=f"{(int(minute) + 1) % 60} {rest}")
    return replace(job, env="2")


def write_jobs_file(path: Path, jobs: list[Job], command: list[str]) -> None:
    head = f'default-job = "{DEFAULT_JOB}"\n\n'
    text = head + "\n\n".join(j.toml(command) for j in jobs) + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # the service never reads half a file


def seed_state(data_dir: Path, names: list[str]) -> None:
    """Every job in ``names`` ran just now: an interval job is not due for hours, nothing runs at start. (Jobs a
    reload adds are in it too: a state file keeps the states of jobs it does not run.)"""
    data_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ran: dict[str, object] = {"status": "completed", "triggers": [], "startedAt": now}
    jobs: dict[str, dict[str, object]] = {
        job: {"lastRun": {"runId": f"seed-{job}", **ran}, "current": None, "notBefore": None, "pending": []}
        for job in names
    }
    (data_dir / "orchestrator_state.json").write_text(json.dumps({"version": 2, "jobs": jobs}))
