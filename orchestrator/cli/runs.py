"""``runs show RUNID``: a run's timeline from the server, as a table that fits the terminal (``--json``: the
steps document as the service sent it)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from orchestrator.cli.client import auth_headers, refused_by, server_url
from orchestrator.cli.follow import ELLIPSIS, duration_text
from orchestrator.cli.httpclient import open_url
from orchestrator.cli.jobs import api_of, job_of
from orchestrator.config import ConfigError
from orchestrator.core.events import parse_iso
from orchestrator.core.printable import printable

MIN_NAME = 12
"""The step names' column never shrinks below this: a name cut shorter says nothing."""
MIN_DETAIL = 10
"""What the details keep of a narrow terminal when the names would take it all ("repo 5/15…")."""
GAP = "  "
ARROW = "\u2192"


def cmd_runs(args: argparse.Namespace) -> int:
    """``runs show RUNID``: 0 when the run was shown, 1 when the server has no such run (of ``--job``)."""
    url = server_url(args)
    job = job_of(args)
    request = urllib.request.Request(
        f"{url}{api_of(job)}/runs/{quote(args.run_id, safe='')}/steps", headers=auth_headers(args)
    )
    try:
        with open_url(request, timeout=10) as response:
            document: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise refused_by(url, exc) from None
        if job is None:
            print(f"No run {printable(args.run_id)!r} in the history of {url}", file=sys.stderr)
            return 1
        _check_job(url, job, auth_headers(args))  # an unknown job is not an unknown run
        print(f"No run {printable(args.run_id)!r} of job {job} in the history of {url}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(timeline(document, shutil.get_terminal_size().columns)))
    return 0


def _check_job(url: str, job: str, headers: dict[str, str]) -> None:
    """A :class:`ConfigError` if the service has no job ``job`` (a run's 404 does not say whose it is)."""
    request = urllib.request.Request(f"{url}{api_of(job)}/status", headers=headers)
    try:
        with open_url(request, timeout=10):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise refused_by(url, exc, job=job) from None
    except (urllib.error.URLError, OSError):
        pass  # it answered a moment ago: the run's 404 stands


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table, every cell already text (and printable)."""

    number: str
    name: str
    start: str
    took: str
    percent: str
    detail: str


def timeline(document: dict[str, Any], columns: int) -> list[str]:
    """The lines for a steps document: a heading, one row per step (name, start from the run's start,
    duration, percent from start to end, last detail), a total; no line wider than ``columns`` unless even
    the shortest name column would not fit."""
    steps = [step for step in document.get("steps") or [] if isinstance(step, dict)]
    run_id, status = printable(str(document.get("runId", "?"))), printable(str(document.get("status", "?")))
    if not steps:
        return [f"Run {run_id}: {status}, no steps recorded (it ran before runs kept steps, or its job reported none)"]
    heading = f"Run {run_id}: {status}, {len(steps)} step{'s' if len(steps) != 1 else ''}"
    if document.get("truncated"):
        heading += f" (the last, {printable(str(steps[-1].get('name')))!r}, stands for every later one)"
    origin = parse_iso(steps[0].get("startedAt"))
    rows = [_row(number, step, origin) for number, step in enumerate(steps, 1)]
    rows.append(_total(steps, origin, running=status == "running"))
    return [heading, *_table([Row("#", "Step", "Start", "Took", "Percent", "Detail"), *rows], columns)]


def _row(number: int, step: dict[str, Any], origin: datetime | None) -> Row:
    started = parse_iso(step.get("startedAt"))
    offset = (started - origin).total_seconds() if started is not None and origin is not None else None
    duration = step.get("durationSeconds")
    return Row(
        number=str(number),
        name=printable(str(step.get("name", ""))),
        start=_seconds(offset),
        took=_seconds(duration) if step.get("endedAt") is not None else "running",
        percent=f"{_number(step.get('percentStart'))}{ARROW}{_number(step.get('percentEnd'))}",
        detail=printable(_detail(step)),
    )


def _total(steps: Sequence[dict[str, Any]], origin: datetime | None, *, running: bool) -> Row:
    ended = parse_iso(steps[-1].get("endedAt"))
    if ended is not None and origin is not None:
        took = _seconds((ended - origin).total_seconds())
    else:  # the current step of a running run has no end yet: the steps before it
        took = _seconds(sum(float(step.get("durationSeconds") or 0) for step in steps))
    percent = f"{_number(steps[0].get('percentStart'))}{ARROW}{_number(steps[-1].get('percentEnd'))}"
    return Row("", "Total so far" if running else "Total", "", took, percent, "")


def _table(rows: Sequence[Row], columns: int) -> list[str]:
    """``rows`` in aligned columns; the name and detail columns share what the others leave of ``columns``, the
    names first (the details keep :data:`MIN_DETAIL`), each cut with an ellipsis where it is too long."""
    widths = [max(len(getattr(row, cell)) for row in rows) for cell in ("number", "start", "took", "percent")]
    fixed = sum(widths) + len(GAP) * 5
    room = max(MIN_NAME, columns - 1 - fixed)  # one column spare: a line that fills the terminal wraps on some
    longest_name = max(len(row.name) for row in rows)
    longest_detail = max(len(row.detail) for row in rows[1:]) if len(rows) > 1 else 0
    if not longest_detail:  # no step said what it was doing: no column for it
        rows = [replace(row, detail="") for row in rows]
    name_width = max(MIN_NAME, min(longest_name, room - min(longest_detail, MIN_DETAIL)))
    detail_width = max(0, room - name_width)
    number, start, took, percent = widths
    lines = []
    for row in rows:
        line = (
            f"{row.number:>{number}}{GAP}{_cut(row.name, name_width):<{name_width}}{GAP}{row.start:>{start}}"
            f"{GAP}{row.took:>{took}}{GAP}{row.percent:>{percent}}{GAP}{_cut(row.detail, detail_width)}"
        )
        lines.append(line.rstrip())
    return lines


def _detail(step: dict[str, Any]) -> str:
    text = str(step.get("detail") or "")
    done, total = step.get("done"), step.get("total")
    if done is not None:
        text += (" " if text else "") + (f"({done}/{total})" if total is not None else f"({done})")
    return text


def _seconds(seconds: object) -> str:
    """``4.2s`` under a minute (many steps take less than a second), else ``12:30`` (``1:02:05``)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "?"
    return f"{max(0.0, seconds):.1f}s" if seconds < 59.95 else duration_text(seconds)


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1].rstrip() + ELLIPSIS if width > 0 else ""


def _number(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return "?"
