"""What one job is to the service: its command, its schedule, its files and the limits on its runs (a
:class:`JobSpec`), made from a job of the jobs file or, without one, from the flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from orchestrator.config import Settings
from orchestrator.core.records import DEFAULT_JOB
from orchestrator.core.schedule import Schedule
from orchestrator.jobsfile.model import JobConfig, job_from_settings


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

    @classmethod
    def from_settings(cls, settings: Settings) -> JobSpec:
        return cls.from_config(job_from_settings(settings), settings, default=True)

    @classmethod
    def from_config(cls, job: JobConfig, settings: Settings, *, default: bool) -> JobSpec:
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
        )

    @property
    def schedule(self) -> Schedule:
        return Schedule(timedelta(minutes=self.interval_minutes), timedelta(minutes=self.cooldown_minutes))
