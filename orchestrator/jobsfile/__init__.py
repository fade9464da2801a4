"""The jobs file: several named jobs in one TOML file (``--jobs FILE``), read with the standard library's
``tomllib`` and checked whole before anything uses it. Every mistake is one :class:`JobsFileError` line naming
the file, the key and what is wrong (``jobs.toml: jobs.report.cron: bad cron expression '61 * * * *': minute 61
is out of range (0-59)``); a key nobody reads is a mistake too, so that a typo never silently does nothing.

Values are checked with the limits of the flags that say the same for one job (orchestrator/config.py). The
keys of ``[defaults]`` apply to every job; a job's own value replaces the default whatever its kind (a list, a
table: nothing is merged), and a job's own ``interval`` or ``cron`` replaces the default schedule, whichever
kind that is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.jobsfile.model import (
    DEFAULT_JOB,
    JobConfig,
    JobsFile,
    JobsFileError,
    job_from_settings,
    local_zone,
    timing_of,
)

if TYPE_CHECKING:
    from orchestrator.jobsfile.keys import JOB_KEYS
    from orchestrator.jobsfile.parse import load_jobs_file, parse_jobs

__all__ = [
    "DEFAULT_JOB",
    "JOB_KEYS",
    "JobConfig",
    "JobsFile",
    "JobsFileError",
    "job_from_settings",
    "load_jobs_file",
    "local_zone",
    "parse_jobs",
    "timing_of",
]


def __getattr__(name: str) -> Any:
    """The parser (and its ``tomllib``, its keys' checks) is imported when first asked for: a service without a
    jobs file never reads one."""
    if name in ("load_jobs_file", "parse_jobs"):
        from orchestrator.jobsfile.parse import load_jobs_file, parse_jobs

        return {"load_jobs_file": load_jobs_file, "parse_jobs": parse_jobs}[name]
    if name == "JOB_KEYS":
        from orchestrator.jobsfile.keys import JOB_KEYS

        return JOB_KEYS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
