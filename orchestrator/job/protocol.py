"""What a job is to the runner: it runs once with a :class:`RunContext`, reports progress and its process
group as it goes, hands every line it prints to the run's log, and ends with a :class:`JobResult`. Also the
``PROGRESS`` line every job may print."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from orchestrator.core.events import RunStatus, Source
from orchestrator.core.records import DEFAULT_JOB
from orchestrator.core.steps import KNOWN_KEYS, Parsed, StepReport, cut_name, from_fields, unknown_keys

PROGRESS_LINE = re.compile(r"^PROGRESS\s+(-?\d+(?:\.\d+)?)%?(?:\s+(.*))?$")
PROGRESS_JSON = re.compile(r"^PROGRESS\s+(\{.*\})$")
MAX_JSON_REPORT_BYTES = 16384
"""A JSON report longer than this is not parsed (a job's line is cut at 8 KiB anyway; this is the bound)."""
MARK = "[snapshot-orchestrator]"
"""Starts the lines the service itself writes into a run's log (not the job's own output)."""

Report = Callable[[Parsed], None]
"""Called with each progress report the job prints (what had to be cut from it beside it)."""
Started = Callable[[int], None]
"""Called with the job's process group id once it runs, so that it can be recorded."""


class Pipe(StrEnum):
    """Which of the job's outputs a line came from (as written in the run's log)."""

    OUT = "out"
    ERR = "err"


Output = Callable[[Pipe, str], Awaitable[None] | None]
"""Called with (pipe, text) for every line the job prints, progress lines and blank lines included. An awaitable
back asks the reader to wait for it before it reads on (the log's disk lags: the job waits on its pipe)."""


@runtime_checkable
class BlockOutput(Protocol):
    """An :data:`Output` that also takes many lines at once (a chatty job's output costs a step per block read
    from its pipe, not one per line)."""

    def __call__(self, pipe: Pipe, text: str) -> Awaitable[None] | None: ...

    def lines(self, pipe: Pipe, block: bytes) -> Awaitable[None] | None:
        """Take ``block``: whole lines, each ending in a newline, clean (valid UTF-8, no carriage return at
        the end, none longer than the line limit). An awaitable back means what it means for one line."""
        ...


def ignore_pid(pid: int) -> None:
    pass


def ignore_output(pipe: Pipe, text: str) -> Awaitable[None] | None:
    return None


@dataclass(frozen=True, slots=True)
class RunContext:
    run_id: str
    source: Source
    reason: str
    progress_file: Path
    output: Output = field(default=ignore_output, compare=False, repr=False)
    """Where the job's lines go (the run's log); a job that prints nothing may ignore it."""
    job: str = DEFAULT_JOB
    """The job's name (``SNAPSHOT_JOB``)."""


@dataclass(frozen=True, slots=True)
class JobResult:
    status: RunStatus
    exit_code: int | None = None
    error: str | None = None


class Job(Protocol):
    async def run(self, ctx: RunContext, report: Report, started: Started = ignore_pid) -> JobResult:
        """Run once, handing each line the job prints to ``ctx.output``. Cancelling the call stops the job
        (its whole process tree) before the cancel goes on."""
        ...


def parse_progress_line(line: str) -> Parsed | None:
    """A ``PROGRESS`` line as a report; other lines -> ``None``.

    - ``PROGRESS 45 Fetching PRs (5/15)``: percent and step (each new text is a new step);
    - ``PROGRESS {"percent": 45, "step": "Fetching PRs", "detail": "repo 5/15", "done": 5, "total": 15}``:
      every key optional; unknown keys are ignored and bad values dropped (said in ``problems``).
    """
    text = line.strip()
    if not text.startswith("PROGRESS"):
        return None
    if (shaped := PROGRESS_JSON.match(text)) is not None:
        return _parse_json(shaped.group(1))
    match = PROGRESS_LINE.match(text)
    if match is None:
        return None
    step = match.group(2)
    if not step:
        return Parsed(StepReport(percent=min(100.0, max(0.0, float(match.group(1))))))
    name, cut = cut_name(step)
    problems = (f"step of {len(step)} characters cut",) if cut else ()
    return Parsed(StepReport(percent=min(100.0, max(0.0, float(match.group(1)))), step=name or None), problems)


def _parse_json(text: str) -> Parsed:
    if len(text) > MAX_JSON_REPORT_BYTES:
        return Parsed(StepReport(), (f"a JSON report of {len(text)} characters ignored",))
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return Parsed(StepReport(), ("a report that is not JSON ignored",))
    if not isinstance(doc, dict):
        return Parsed(StepReport(), ("a JSON report that is not an object ignored",))
    parsed = from_fields(doc, percent_key="percent")
    unknown = unknown_keys(doc, KNOWN_KEYS)
    return parsed if unknown is None else Parsed(parsed.report, (*parsed.problems, unknown))
