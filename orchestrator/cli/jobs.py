"""``--job NAME`` of the client commands: the name checked, where a job's API is, and which folder a trigger
file for it goes into.

Without ``--job`` a command means the service's default job and uses ``/api/snapshot/...``, which every
version of the service answers; with it, ``/api/jobs/NAME/...`` (the same documents). A trigger file for the
default job goes into the triggers folder itself, any other job's into ``triggers/NAME/``; which job is the
default only the jobs file says, so ``trigger --job NAME`` reads it when given (``--jobs``, ``SNAPSHOT_JOBS``)
and otherwise takes ``NAME`` for a job other than the default.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from orchestrator.cli.options import option
from orchestrator.config import ConfigError
from orchestrator.core.printable import printable

DEFAULT_API = "/api/snapshot"
"""The default job's API: the paths of the service from before it had several jobs, still answered."""


def job_of(args: argparse.Namespace) -> str | None:
    """``--job``, checked as the jobs file checks a job's name; ``None`` when not given (the default job)."""
    name: str | None = getattr(args, "job", None)
    if name is None:
        return None
    from orchestrator.jobsfile.parse import JOB_NAME  # the parser is imported by the client commands only

    if not JOB_NAME.fullmatch(name):
        raise ConfigError(
            "--job must be a job's name: 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit, "
            f"got {printable(name)!r}"
        )
    return name


def api_of(job: str | None) -> str:
    """The path prefix of ``job``'s API (``None``: the default job's)."""
    return DEFAULT_API if job is None else f"/api/jobs/{quote(job, safe='')}"


@dataclass(frozen=True, slots=True)
class TriggerFolder:
    path: Path
    note: str | None = None
    """Said on stderr: the folder is a guess that may be wrong (it did not exist, and no jobs file said)."""


def trigger_folder(args: argparse.Namespace) -> TriggerFolder:
    """Where ``trigger`` drops its file: the triggers folder for the default job, ``NAME/`` in it for another."""
    folder: Path = option("--triggers-dir").value(args)
    job = job_of(args)
    if job is None:
        return TriggerFolder(folder)
    path = option("--jobs").value(args)
    if path is not None:
        from orchestrator.jobsfile.parse import load_jobs_file

        jobs = load_jobs_file(path)
        names = [each.name for each in jobs.jobs]
        if job not in names:
            raise ConfigError(f"{path} has no job {job!r}; its jobs: {', '.join(names)}")
        return TriggerFolder(folder if job == jobs.default_job else folder / job)
    if (folder / job).is_dir():  # the service makes each job's folder but the default job's at its start
        return TriggerFolder(folder / job)
    return TriggerFolder(
        folder / job,
        note=f"{folder / job} did not exist: the service makes it for each job but the default one, which takes "
        "the files in the triggers folder itself. If this is the default job, leave out --job (or give --jobs "
        "FILE).",
    )
