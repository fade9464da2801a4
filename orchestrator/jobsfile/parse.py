"""Reading the file: TOML through ``tomllib``, then its shape (the top-level keys, ``[defaults]``, each
``[jobs.NAME]`` with the defaults applied) and what holds between jobs (``after`` names jobs, without a cycle;
``default-job`` names one). The first mistake ends the reading with its one line."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from orchestrator.jobsfile.keys import FIELDS, JOB_KEYS, SCHEDULE, Where, shown, table
from orchestrator.jobsfile.model import JobConfig, JobsFile, JobsFileError

JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_FILE_BYTES = 1 << 20
TOP_KEYS = ("default-job", "max-parallel", "defaults", "jobs")


def load_jobs_file(path: Path) -> JobsFile:
    """Read and check the file; :class:`JobsFileError` for the first thing wrong with it."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise JobsFileError(path, "", f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise JobsFileError(path, "", "is over 1 MiB; that is no jobs file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobsFileError(path, "", f"is not UTF-8 text (byte {exc.start})") from None
    return parse_jobs(text, path)


def parse_jobs(text: str, path: Path) -> JobsFile:
    """The jobs that ``text``, the content of ``path``, says; :class:`JobsFileError` for the first mistake."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, str(exc)) from None
    top = Where(path, ())
    _known_keys(document, TOP_KEYS, top)
    defaults = _job_values(table(document.get("defaults", {}), top.at("defaults")), top.at("defaults"))
    tables = document.get("jobs")
    if not isinstance(tables, dict) or not tables:
        raise top.at("jobs").error("no jobs: name each in a [jobs.NAME] table")
    jobs = tuple(_job(name, raw, defaults, top.at("jobs")) for name, raw in tables.items())
    names = [job.name for job in jobs]
    _check_after(jobs, top)
    default_job = document.get("default-job", names[0])
    if default_job not in names:
        raise top.at("default-job").error(f"{shown(default_job)} names no job (the jobs: {', '.join(names)})")
    max_parallel = document.get("max-parallel")
    if max_parallel is not None and (type(max_parallel) is not int or max_parallel < 1):
        raise top.at("max-parallel").error(f"must be a whole number, 1 or more, got {shown(max_parallel)}")
    return JobsFile(path, default_job, max_parallel, jobs)


def _syntax_error(path: Path, message: str) -> JobsFileError:
    """tomllib's "Invalid value (at line 3, column 9)" as ``line 3, column 9: not TOML: invalid value``."""
    found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", message)
    if found is None:
        return JobsFileError(path, "", f"not TOML: {message}")
    return JobsFileError(path, found[2], f"not TOML: {found[1][:1].lower()}{found[1][1:]}")


def _known_keys(values: dict[str, Any], known: Collection[str], where: Where) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known here: {', '.join(known)})"
            raise where.at(key).error(f"unknown key{hint}")


def _job(name: str, raw: object, defaults: dict[str, Any], where: Where) -> JobConfig:
    here = where.at(name)
    if not JOB_NAME.match(name):
        raise here.error("a job's name is 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit")
    own = _job_values(table(raw, here), here)
    inherited = {k: v for k, v in defaults.items() if not (SCHEDULE & own.keys() and k in SCHEDULE)}
    values = {**inherited, **own}
    if "command" not in values:
        raise here.at("command").error("missing: every job needs a command")
    if "timezone" in own and "cron" not in values:
        raise here.at("timezone").error("only a cron schedule has a time zone")
    return JobConfig(name, **{FIELDS[key]: value for key, value in values.items()})


def _job_values(raw: dict[str, Any], where: Where) -> dict[str, Any]:
    """A job's (or the defaults') keys, each checked: key -> value for :class:`JobConfig`."""
    _known_keys(raw, JOB_KEYS, where)
    if raw.keys() >= SCHEDULE:
        raise where.error("interval and cron both given: a job has one schedule at most")
    return {key: JOB_KEYS[key](value, where.at(key)) for key, value in raw.items()}


def _check_after(jobs: tuple[JobConfig, ...], top: Where) -> None:
    after = {job.name: job.after for job in jobs}
    for job in jobs:
        for name in job.after:
            if name not in after:
                raise top.at("jobs").at(job.name).at("after").error(f"{name!r} names no job")
    if cycle := _cycle(after):
        raise top.at("jobs").at(cycle[0]).at("after").error(f"a cycle: {' -> '.join(cycle)} (each runs after the next)")


def _cycle(after: Mapping[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """A path through ``after`` that comes back to where it began, if there is one. A walk of its own, not
    recursion: a chain of thousands of jobs must not reach the interpreter's recursion limit."""
    done: set[str] = set()
    for root in after:
        if root in done:
            continue
        path, branches = [root], [iter(after[root])]
        while branches:
            step = next(branches[-1], None)
            if step is None:
                done.add(path.pop())
                branches.pop()
            elif step in path:
                return (*path[path.index(step) :], step)
            elif step not in done:
                path.append(step)
                branches.append(iter(after[step]))
    return None
