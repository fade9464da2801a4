"""``status``: the status document from the server, or what the data folder says when the server is down, and
the last runs, for people (or ``--json``)."""

from __future__ import annotations

import argparse
import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.cli.client import auth_headers, refused_by, server_url
from orchestrator.cli.httpclient import open_url
from orchestrator.cli.options import option
from orchestrator.core.events import iso, utcnow
from orchestrator.core.printable import first_line, printable
from orchestrator.core.records import DEFAULT_JOB
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.store.history import HISTORY_FILE_NAME, read_recent
from orchestrator.store.statefile import MAX_STATE_FILE_BYTES, STATE_FILE_NAME, jobs_in

STATUS_SHOWN_RUNS = 5
"""Runs listed by ``status``."""


def cmd_status(args: argparse.Namespace) -> int:
    url = server_url(args)
    data_dir: Path = option("--data-dir").value(args)
    source = f"server {url}"
    request = urllib.request.Request(f"{url}/api/snapshot/status", headers=auth_headers(args))
    try:
        with open_url(request, timeout=5) as response:
            document: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        raise refused_by(url, exc) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        document = offline_status(data_dir)
        source = f"data folder (server {url} unreachable: {getattr(exc, 'reason', exc)})"
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        if document.get("serverUp") is False:
            runs = read_recent(data_dir / HISTORY_FILE_NAME, STATUS_SHOWN_RUNS)
        else:
            runs = recent_runs(url, auth_headers(args))
        print(format_status(document, source, runs))
    return 0


def recent_runs(url: str, headers: dict[str, str], count: int = STATUS_SHOWN_RUNS) -> list[dict[str, Any]]:
    """The last runs from the history, or none if it cannot be read (the status is still worth showing)."""
    request = urllib.request.Request(f"{url}/api/snapshot/runs?limit={count}", headers=headers)
    try:
        with open_url(request, timeout=5) as response:
            page = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return []
    runs = page.get("runs") if isinstance(page, dict) else None
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []


def offline_status(data_dir: Path) -> dict[str, Any]:
    """What the files say when the server is down: the progress document and the last run."""
    from orchestrator.disk.atomic import MAX_DOCUMENT_BYTES, InvalidDocument, read_json_object

    def read(name: str, limit: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
        try:
            return read_json_object(data_dir / name, limit)
        except (OSError, InvalidDocument):
            return {}

    progress = read(PROGRESS_FILE_NAME)
    state = (jobs_in(read(STATE_FILE_NAME, MAX_STATE_FILE_BYTES), DEFAULT_JOB) or {}).get(DEFAULT_JOB, {})
    last = state.get("current") or state.get("lastRun") or {}
    return {
        "running": False,
        "serverUp": False,
        "lastRunAt": last.get("startedAt") if isinstance(last, dict) else None,
        "nextRunAt": None,
        "progress": {k: progress.get(k) for k in ("status", "step", "progress")} if progress else None,
        "lastRun": state.get("lastRun"),
        # pendingCount: the file names at most 100 pending triggers and counts the rest.
        "pendingTriggers": _count(state.get("pendingCount")) or len(state.get("pending") or []),
        "paused": state.get("paused"),
        "checkedAt": iso(utcnow()),
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def format_status(doc: dict[str, Any], source: str, runs: Sequence[dict[str, Any]] = ()) -> str:
    """The status for people: what runs now, what comes next, and the last runs (newest first)."""
    from orchestrator.cli.follow import duration_text

    progress = doc.get("progress") or {}
    lines = [f"Source:   {source}"]
    where = f"{progress.get('progress', 0)}%"
    eta = doc.get("eta") or {}
    if isinstance(eta, dict) and eta.get("secondsLeft") is not None:
        where += f", about {duration_text(eta['secondsLeft'])} left"
    paused = doc.get("paused") or None
    step = [f"Step:     {text}"] if (text := step_text(progress)) else []
    if doc.get("stopping"):
        lines += [f"State:    stopping ({doc['stopping']}), {where}", *step]
    elif doc.get("running"):
        lines += [f"State:    running, {where}", *step]
    elif doc.get("serverUp") is False:
        lines.append("State:    service not running")
    elif paused:
        lines.append("State:    idle")
    else:
        lines.append(f"State:    idle, next snapshot in {until_text(doc)} ({doc.get('nextRunAt')})")
    if isinstance(paused, dict):
        why = f": {paused['reason']}" if paused.get("reason") else ""
        lines.append(f"Paused:   since {paused.get('since')}{why} (automatic snapshots off; resume to restart them)")
    for check in doc.get("checks") or []:
        if isinstance(check, dict):
            lines.append(f"Warning:  {check.get('message')}")
    if doc.get("pendingTriggers"):
        lines.append(f"Queued:   {doc['pendingTriggers']} trigger(s) waiting")
    if runs:
        lines.append("Last runs:")
        for run in runs:
            trigger = str(run.get("trigger", "?"))
            if (run.get("triggerCount") or 1) > 1:
                trigger += f" + {run['triggerCount'] - 1} more"
            reason = f" ({run['reason']})" if run.get("reason") else ""
            error = first_line(str(run.get("error") or ""))
            took = duration_text(run.get("durationSeconds")) if run.get("finishedAt") else "..."
            line = f"  {run.get('startedAt')}  {run.get('status', '?'):<9} {took:>8}  {trigger}{reason}"
            lines.append(line + (f" - {error}" if error else ""))
        return printed(lines)
    last = doc.get("lastRun") or {}
    if last:
        lines.append(f"Last run: {last.get('status')} at {last.get('startedAt')}, trigger {last.get('trigger')}")
        if last.get("error"):
            lines.append(f"Error:    {first_line(str(last['error']))}")
    else:
        lines.append(f"Last run: {doc.get('lastRunAt') or 'never'}")
    return printed(lines)


def step_text(progress: dict[str, Any]) -> str:
    """The current step with what it is doing now and its counts: ``Fetching GitHub PRs — repo 5/15: octo/api
    (5/15)``; each part only when the job reported it."""
    text = str(progress.get("step") or "")
    if progress.get("detail"):
        text += f" \u2014 {progress['detail']}"
    done, total = progress.get("done"), progress.get("total")
    if done is not None:
        text += f" ({done}/{total})" if total is not None else f" ({done})"
    return text


def printed(lines: list[str]) -> str:
    """The lines of :func:`format_status`, each printable: every value in them (step, error, reason, check
    message, run id) comes from the service, and much of it from outsiders."""
    return "\n".join(printable(line) for line in lines)


def until_text(doc: dict[str, Any]) -> str:
    """``3 s`` under a minute (``secondsUntilNextRun``), else ``12 min`` (whole minutes, rounded up)."""
    seconds = doc.get("secondsUntilNextRun")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 <= seconds <= 59:
        return f"{math.ceil(seconds)} s"
    return f"{doc.get('minutesUntilNextRun')} min"
