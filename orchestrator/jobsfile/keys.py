"""The keys of a job (or of ``[defaults]``), each with its check: the value for :class:`JobConfig`, or a
:class:`JobsFileError` that says where it is (:class:`Where`) and what is wrong. Limits are the flags' own
(orchestrator/config.py)."""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.config import MAX_MINUTES, MAX_SECONDS, NOTIFY_EVENTS, bad_notify_url
from orchestrator.core.calendar import bad_cron
from orchestrator.jobsfile.model import JobsFileError

RESERVED_ENV = frozenset(
    {"SNAPSHOT_JOB", "SNAPSHOT_PROGRESS_FILE", "SNAPSHOT_RUN_ID", "SNAPSHOT_TRIGGER", "SNAPSHOT_REASON"}
)
"""Set by the service for each run (orchestrator/job/subprocessjob.py): a job's ``env`` would be overwritten."""


@dataclass(frozen=True, slots=True)
class Where:
    """A key in the file, to say where a mistake is: ``jobs.report.notify-url[1]``."""

    path: Path
    parts: tuple[str | int, ...]

    def at(self, part: str | int) -> Where:
        return Where(self.path, (*self.parts, part))

    def error(self, message: str) -> JobsFileError:
        key = ""
        for part in self.parts:
            if isinstance(part, int):
                key += f"[{part}]"
                continue
            # A key that is not bare is written as TOML quotes it.
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            key += f".{name}" if key else name
        return JobsFileError(self.path, key, message)


def table(value: object, where: Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"must be a table, got {shown(value)}")
    return value


def shown(value: object) -> str:
    """A value as the message shows it: short, and without quoting a whole table."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------- one key each
def _amount(unit: str, maximum: int, *, positive: bool = False, note: str = "") -> Callable[[Any, Where], float]:
    def check(value: Any, where: Where) -> float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise where.error(f"must be a number of {unit}, got {shown(value)}")
        if value < 0 or (value == 0 and positive):
            raise where.error(f"must be {'more than zero' if positive else 'zero or more'} {unit}, got {value}")
        if value > maximum:
            raise where.error(f"must be at most {maximum} {unit}{note}, got {value}")
        return float(value)

    return check


def _text(value: Any, where: Where, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise where.error(f"must be {what}, got {shown(value)}")
    if "\0" in value:
        raise where.error("holds a NUL character, which no program can be given")
    return value


def _strings(value: Any, where: Where, what: str) -> list[str]:
    if not isinstance(value, list):
        raise where.error(f"must be a list of {what}, got {shown(value)}")
    return [_text(each, where.at(index)) for index, each in enumerate(value)]


def _command(value: Any, where: Where) -> tuple[str, ...]:
    if isinstance(value, str):
        line = _text(value, where)
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise where.error(f"cannot be split into words: {exc}") from None
    else:
        argv = _strings(value, where, "arguments (or one string, split like a shell would)")
    if not argv or not argv[0]:
        raise where.error("is empty")
    return tuple(argv)


def _cron(value: Any, where: Where) -> str:
    expression = " ".join(_text(value, where).split())
    if (why := bad_cron(expression)) is not None:
        raise where.error(f"bad cron expression {value!r}: {why}")
    return expression


def _zone(value: Any, where: Where) -> str:
    name = _text(value, where, "a time zone name like Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise where.error(f"no time zone {name!r} (a tz database name like Europe/Berlin or UTC)") from None
    return name


def _cwd(value: Any, where: Where) -> Path:
    if not _text(value, where, "a folder"):
        raise where.error("is empty")
    folder = Path(value).expanduser()
    return folder if folder.is_absolute() else where.path.parent / folder


def _env(value: Any, where: Where) -> Mapping[str, str]:
    env = {}
    for name, each in table(value, where).items():
        if not name or "=" in name or "\0" in name:
            raise where.at(name).error("is no variable name")
        if name in RESERVED_ENV:
            raise where.at(name).error("is set by the service for each run")
        env[name] = _text(each, where.at(name))
    return MappingProxyType(env)


def _bool(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"must be true or false, got {shown(value)}")
    return value


def _after(value: Any, where: Where) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_strings(value, where, "job names")))


def _urls(value: Any, where: Where) -> tuple[str, ...]:
    urls = _strings(value, where, "http(s) URLs")
    for index, url in enumerate(urls):
        if (why := bad_notify_url(url)) is not None:
            raise where.at(index).error(why)
    return tuple(dict.fromkeys(urls))


def _events(value: Any, where: Where) -> tuple[str, ...]:
    events = _strings(value, where, "events")
    if not events or any(event not in NOTIFY_EVENTS for event in events):
        raise where.error(f"takes a list of {', '.join(NOTIFY_EVENTS)}, got {shown(value)}")
    return tuple(dict.fromkeys(events))


SCHEDULE = frozenset({"interval", "cron"})
_minutes = _amount("minutes", MAX_MINUTES, note=" (a year)")
JOB_KEYS: dict[str, Callable[[Any, Where], Any]] = {
    "command": _command,
    "interval": _amount("minutes", MAX_MINUTES, positive=True, note=" (a year)"),
    "cron": _cron,
    "timezone": _zone,
    "cooldown": _minutes,
    "timeout": _minutes,
    "stall-timeout": _minutes,
    "kill-grace": _amount("seconds", MAX_SECONDS),
    "cwd": _cwd,
    "env": _env,
    "paused": _bool,
    "after": _after,
    "notify-url": _urls,
    "notify-on": _events,
}
"""Every key a job (or ``[defaults]``) takes, and its check."""
FIELDS = {key: key.replace("-", "_") for key in JOB_KEYS} | {
    "interval": "interval_minutes",
    "cooldown": "cooldown_minutes",
    "timeout": "timeout_minutes",
    "stall-timeout": "stall_timeout_minutes",
    "kill-grace": "kill_grace_seconds",
    "notify-url": "notify_urls",
}
"""The :class:`JobConfig` field of each key."""
