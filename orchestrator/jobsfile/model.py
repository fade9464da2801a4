"""What a jobs file says: the jobs (:class:`JobConfig`), the file (:class:`JobsFile`), the one-line error, the
one job a service without a file has, and each job's schedule in its time zone."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from orchestrator.config import DEFAULT_COOLDOWN_MINUTES, DEFAULT_KILL_GRACE_SECONDS, ConfigError, RunLimits, Settings
from orchestrator.core.schedule import Schedule, Timing

if TYPE_CHECKING:  # a calendar job's: imported when one is made
    from zoneinfo import ZoneInfo

DEFAULT_JOB = "snapshot"
"""The one job of a service without a jobs file."""


@dataclass(frozen=True, slots=True)
class JobConfig(RunLimits):
    """One job as the file (or, without one, the flags) says it."""

    name: str
    command: tuple[str, ...]
    interval_minutes: float | None = None
    """Minutes between automatic runs; with neither this nor ``cron`` the job runs on triggers and ``after``."""
    cron: str | None = None
    timezone: str | None = None
    """The cron schedule's zone (a tz database name); ``None``: the machine's own (:func:`local_zone`)."""
    cooldown_minutes: float = DEFAULT_COOLDOWN_MINUTES
    timeout_minutes: float = 0.0
    stall_timeout_minutes: float = 0.0
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    cwd: Path | None = None
    """The job's working folder (a relative one is taken from the jobs file's folder); ``None``: the service's."""
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """Variables added to the job's environment."""
    paused: bool = False
    """The schedule starts paused (as ``pause`` would; triggers still run)."""
    after: tuple[str, ...] = ()
    """Jobs whose completed runs trigger this one."""
    notify_urls: tuple[str, ...] | None = None
    """Webhooks for this job's runs; ``None``: the service's own."""
    notify_on: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class JobsFile:
    path: Path
    default_job: str
    """The job of the triggers folder itself and of ``/api/snapshot/...``: ``default-job``, else the first."""
    max_parallel: int | None
    """Runs of different jobs at once; ``None``: no limit."""
    jobs: tuple[JobConfig, ...]
    """In the file's order."""

    def job(self, name: str) -> JobConfig:
        """The job called ``name``; :class:`KeyError` if there is none."""
        for each in self.jobs:
            if each.name == name:
                return each
        raise KeyError(name)


class JobsFileError(ConfigError):
    """A jobs file that cannot be used; ``str()`` is the one line for the user."""

    def __init__(self, path: Path, key: str, message: str) -> None:
        self.path, self.key, self.reason = path, key, message
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


def job_from_settings(settings: Settings) -> JobConfig:
    """The one job of a service without a jobs file, as the flags say it; notifications are the service's own."""
    job = settings.job
    return JobConfig(
        DEFAULT_JOB,
        job.command,
        interval_minutes=job.interval_minutes,
        cooldown_minutes=job.cooldown_minutes,
        timeout_minutes=job.timeout_minutes,
        stall_timeout_minutes=job.stall_timeout_minutes,
        kill_grace_seconds=job.kill_grace_seconds,
    )


def timing_of(job: JobConfig, *, since: datetime | None = None) -> Timing | None:
    """The job's schedule; ``None`` for one that runs on triggers and ``after`` only. ``since``: when its
    calendar began (the service started, the job was added), see :class:`CronSchedule`."""
    if job.cron is not None:
        from zoneinfo import ZoneInfo

        from orchestrator.core.calendar import CronSchedule

        zone = ZoneInfo(job.timezone) if job.timezone else local_zone()
        return CronSchedule(job.cron, zone, job.cooldown, since)
    if job.interval_minutes is not None:
        return Schedule(timedelta(minutes=job.interval_minutes), job.cooldown)
    return None


def local_zone() -> ZoneInfo:
    """The machine's time zone, with its daylight-saving rules (a fixed offset would be wrong half the year):
    ``TZ`` when it names a zone, else what ``/etc/localtime`` is (a link into the tz database, or a copy), else
    UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    for name in (os.environ.get("TZ", "").removeprefix(":"), _linked_zone("/etc/localtime")):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def _linked_zone(link: str) -> str:
    try:
        target = os.readlink(link)
    except OSError:
        return ""
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
