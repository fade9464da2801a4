"""What one job is to the service: its command, its schedule, its files and the limits on its runs (a
:class:`JobSpec`), made from a job of the jobs file or, without one, from the flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.config import Settings
from orchestrator.core.records import DEFAULT_JOB
from orchestrator.core.schedule import OnDemand, Schedule, Timing
from orchestrator.jobsfile.model import JobConfig, JobsFile, job_from_settings, timing_of

if TYPE_CHECKING:  # a calendar job's: imported when one is made (orchestrator/jobsfile/model.py)
    from orchestrator.core.calendar import CronSchedule


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What one job is: its command, its schedule, its files, and the limits on its runs."""

    command: tuple[str, ...]
    interval_minutes: float
    cooldown_minutes: float
    triggers_dir: Path
    progress_path: Path
    state_path: Path
    kill_grace_seconds: float
    timeout: timedelta | None = None
    stall_timeout: timedelta | None = None
    name: str = DEFAULT_JOB
    """What the job is called where it is named (its badge, ``/badge/<name>.svg``); the API's paths say it too."""
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Variables of the job's own, added to what it inherits."""
    calendar: CronSchedule | None = field(default=None, hash=False)
    """Automatic runs at the times of a cron expression; ``None``: every ``interval_minutes``, or none at all
    when ``manual`` is set."""
    manual: bool = False
    """No automatic runs: the job runs on triggers and after the jobs it follows."""
    paused: bool = False
    """Its schedule is paused at each start (the jobs file says ``paused = true``)."""
    after: tuple[str, ...] = ()
    """The jobs whose completed runs trigger this one."""
    config: JobConfig | None = field(default=None, compare=False, hash=False)
    """What the jobs file (or the flags) said: a reload compares it to tell a changed job."""

    @classmethod
    def from_settings(cls, settings: Settings) -> JobSpec:
        return cls.from_config(job_from_settings(settings), settings, default=True)

    @classmethod
    def from_config(
        cls, job: JobConfig, settings: Settings, *, default: bool, since: datetime | None = None
    ) -> JobSpec:
        """``job`` with its files: the default job's trigger files are those directly in the triggers folder,
        any other job's are in a folder of its name in it; each job's progress file is ``NAME_progress.json``
        in the data folder (the job ``snapshot``'s is ``snapshot_progress.json``, as it always was)."""
        triggers = settings.job.triggers_dir
        return cls(
            command=job.command,
            interval_minutes=job.interval_minutes or 0.0,
            cooldown_minutes=job.cooldown_minutes,
            triggers_dir=triggers if default else triggers / job.name,
            progress_path=settings.store.data_dir / f"{job.name}_progress.json",
            state_path=settings.store.state_path,
            kill_grace_seconds=job.kill_grace_seconds,
            timeout=job.timeout,
            stall_timeout=job.stall_timeout,
            name=job.name,
            cwd=job.cwd,
            env=dict(job.env),
            calendar=_calendar(timing_of(job, since=since)),
            manual=job.interval_minutes is None and job.cron is None,
            paused=job.paused,
            after=job.after,
            config=job,
        )

    @property
    def timing(self) -> Timing | None:
        """When automatic runs are due; ``None`` for a job that runs on triggers and ``after`` only."""
        schedule = self.schedule
        return None if isinstance(schedule, OnDemand) else schedule

    @property
    def schedule(self) -> Schedule | CronSchedule | OnDemand:
        """The job's schedule and its cooldown rules (:class:`OnDemand` for a job with no automatic runs)."""
        cooldown = timedelta(minutes=self.cooldown_minutes)
        if self.manual:
            return OnDemand(cooldown)
        if self.calendar is not None:
            return self.calendar
        return Schedule(timedelta(minutes=self.interval_minutes), cooldown)

    def schedule_json(self) -> dict[str, object]:
        """How the job is scheduled, for the status document: ``interval`` (``minutes``), ``cron``
        (``expression``, ``timezone``) or ``manual``."""
        if self.manual:
            return {"kind": "manual"}
        if self.calendar is not None:
            return {"kind": "cron", "expression": self.calendar.expression, "timezone": str(self.calendar.zone)}
        return {"kind": "interval", "minutes": self.interval_minutes}

    def schedule_words(self) -> str:
        """The schedule in words, for the log: ``every 30 min (...)``, ``at 30 7 * * 1-5 (Europe/Berlin)``."""
        said = self.schedule_json()
        if said["kind"] == "cron":
            return f"at {said['expression']} ({said['timezone']}), cooldown {self.cooldown_minutes:g} min"
        if said["kind"] == "interval":
            return f"every {self.interval_minutes:g} min (cooldown {self.cooldown_minutes:g} min after manual runs)"
        return "on triggers only"


def _calendar(timing: Timing | None) -> CronSchedule | None:
    if timing is None or isinstance(timing, Schedule):  # a service without a calendar job never imports one
        return None
    from orchestrator.core.calendar import CronSchedule

    return timing if isinstance(timing, CronSchedule) else None


def specs_of(jobs: JobsFile | None, settings: Settings, *, since: datetime | None = None) -> dict[str, JobSpec]:
    """Every job's spec by name, in the file's order (without a file, the one job of the flags); ``since``: when
    the calendars begin (the service's start)."""
    if jobs is None:
        spec = JobSpec.from_settings(settings)
        return {spec.name: spec}
    return {
        job.name: JobSpec.from_config(job, settings, default=job.name == jobs.default_job, since=since)
        for job in jobs.jobs
    }
