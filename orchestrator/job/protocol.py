"""What a job is to the runner: it runs once with a :class:`RunContext`, reports progress and its process
group as it goes, hands every line it prints to the run's log, and ends with a :class:`JobResult`. Also the
``PROGRESS`` line every job may print."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from orchestrator.core.events import RunStatus, Source

PROGRESS_LINE = re.compile(r"^PROGRESS\s+(-?\d+(?:\.\d+)?)%?(?:\s+(.*))?$")
MARK = "[snapshot-orchestrator]"
"""Starts the lines the service itself writes into a run's log (not the job's own output)."""

Report = Callable[[float, str | None], None]
"""Called with (percent, step or None) for each progress line the job prints."""
Started = Callable[[int], None]
"""Called with the job's process group id once it runs, so that it can be recorded."""


class Pipe(StrEnum):
    """Which of the job's outputs a line came from (as written in the run's log)."""

    OUT = "out"
    ERR = "err"


Output = Callable[[Pipe, str], Awaitable[None] | None]
"""Called with (pipe, text) for every line the job prints, progress lines and blank lines included. An awaitable
back asks the reader to wait for it before it reads on (the log's disk lags: the job waits on its pipe)."""


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


def parse_progress_line(line: str) -> tuple[float, str | None] | None:
    """``PROGRESS 45 Fetching PRs (5/15)`` -> ``(45.0, "Fetching PRs (5/15)")``; other lines -> ``None``."""
    match = PROGRESS_LINE.match(line.strip())
    if match is None:
        return None
    step = match.group(2)
    return float(match.group(1)), (step.strip() if step else None)
