"""``status``: the state from the server, or what the data folder says when the server is down, and the last
runs, for people (orchestrator/cli/statusview.py) or ``--json``.

Without ``--job`` it shows every job in a line (``GET /api/jobs``) and the last runs of them all
(``GET /api/runs``); a service with one job (no jobs file) is shown in full, as it always was, and so is a
service older than ``/api/jobs`` (it answers 404: its one job is asked for at ``/api/snapshot/...``). With
``--job NAME`` that job is shown in full. ``--json`` prints one status document: ``--job``'s, else the default
job's."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.cli.client import auth_headers, refused_by, server_url
from orchestrator.cli.httpclient import open_url
from orchestrator.cli.jobs import DEFAULT_API, api_of, job_of
from orchestrator.cli.options import option
from orchestrator.cli.statusview import format_overview, format_status
from orchestrator.core.events import iso, utcnow
from orchestrator.core.records import DEFAULT_JOB
from orchestrator.store.history import HISTORY_FILE_NAME, read_recent
from orchestrator.store.statefile import STATE_FILE_NAME, read_state_file

__all__ = ["cmd_status", "format_status", "offline_status", "recent_runs"]

STATUS_SHOWN_RUNS = 5
"""Runs listed by ``status`` for one job."""
ALL_JOBS_SHOWN_RUNS = 10
"""Runs listed by ``status`` for every job together."""
JOB_RUNS_SCANNED = 500
"""The newest runs of every job looked through, with the service down, for the last runs of ``--job``."""


class Unreachable(Exception):
    """No answer from the server (or none that is JSON): the data folder is read instead."""


def cmd_status(args: argparse.Namespace) -> int:
    url = server_url(args)
    headers = auth_headers(args)
    job = job_of(args)
    try:
        if job is None and not args.json:
            overview = all_jobs(url, headers)
            if overview is not None:
                print(overview)
                return 0
        document = get_json(url, f"{api_of(job)}/status", headers, job=job)
    except Unreachable as exc:
        return from_files(args, job, f"data folder (server {url} unreachable: {exc})")
    assert document is not None
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(format_status(document, f"server {url}", recent_runs(url, headers, api_of(job)), job=job))
    return 0


def all_jobs(url: str, headers: dict[str, str]) -> str | None:
    """Every job of the service, from ``GET /api/jobs``; ``None`` if the service has no such path (older)."""
    listing = get_json(url, "/api/jobs", headers, absent_ok=True)
    if listing is None:
        return None
    docs = [doc for doc in listing.get("jobs") or [] if isinstance(doc, dict)]
    if len(docs) == 1:  # no jobs file: as it always was
        return format_status(docs[0], f"server {url}", recent_runs(url, headers, DEFAULT_API))
    runs = recent_runs(url, headers, "/api", ALL_JOBS_SHOWN_RUNS)
    default = listing.get("defaultJob")
    return format_overview(docs, default if isinstance(default, str) else None, f"server {url}", runs)


def get_json(
    url: str, path: str, headers: dict[str, str], *, job: str | None = None, absent_ok: bool = False
) -> dict[str, Any] | None:
    """The JSON object at ``path``; ``None`` for a 404 if ``absent_ok``; a refusal is a ``ConfigError`` (one line,
    exit 2), no answer :class:`Unreachable`."""
    request = urllib.request.Request(f"{url}{path}", headers=headers)
    try:
        with open_url(request, timeout=5) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        if absent_ok and exc.code == 404:
            return None
        raise refused_by(url, exc, job=job) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Unreachable(str(getattr(exc, "reason", exc))) from None
    return document if isinstance(document, dict) else {}


def recent_runs(
    url: str, headers: dict[str, str], api: str = DEFAULT_API, count: int = STATUS_SHOWN_RUNS
) -> list[dict[str, Any]]:
    """The last runs from ``{api}/runs`` (every job's for ``/api``), or none if they cannot be read (the status
    is still worth showing)."""
    request = urllib.request.Request(f"{url}{api}/runs?limit={count}", headers=headers)
    try:
        with open_url(request, timeout=5) as response:
            page = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return []
    runs = page.get("runs") if isinstance(page, dict) else None
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []


# --------------------------------------------------------------------------------------- the data folder
def from_files(args: argparse.Namespace, job: str | None, source: str) -> int:
    """The status as the data folder tells it: every job the state file knows in a line, or one job in full
    (``--job``; the one job there is; ``--json``: the job ``snapshot``'s, else the first's)."""
    data_dir: Path = option("--data-dir").value(args)
    history = data_dir / HISTORY_FILE_NAME
    states = read_states(data_dir)
    if job is None and len(states) > 1 and not args.json:
        docs = [offline_status(data_dir, name, states) for name in states]
        print(format_overview(docs, None, source, read_recent(history, ALL_JOBS_SHOWN_RUNS)))
        return 0
    name = job or (DEFAULT_JOB if DEFAULT_JOB in states or not states else next(iter(states)))
    document = offline_status(data_dir, name, states)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    if job is None:
        runs = read_recent(history, STATUS_SHOWN_RUNS)
    else:
        runs = [run for run in read_recent(history, JOB_RUNS_SCANNED) if run.get("job") == job][:STATUS_SHOWN_RUNS]
    print(format_status(document, source, runs, job=job))
    return 0


def read_states(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each job's state document in the state file, by job, in the file's order (a state file of the version
    before several jobs is the job ``snapshot``'s); none if it cannot be read."""
    from orchestrator.disk.atomic import InvalidDocument

    try:
        return read_state_file(data_dir / STATE_FILE_NAME, DEFAULT_JOB)[0]
    except (OSError, InvalidDocument):
        return {}


def offline_status(
    data_dir: Path, job: str = DEFAULT_JOB, states: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What the files say of ``job`` when the server is down: its progress document and its last run."""
    from orchestrator.disk.atomic import MAX_DOCUMENT_BYTES, InvalidDocument, read_json_object

    try:
        progress = read_json_object(data_dir / f"{job}_progress.json", MAX_DOCUMENT_BYTES)
    except (OSError, InvalidDocument):
        progress = {}
    state = (read_states(data_dir) if states is None else states).get(job, {})
    last = state.get("current") or state.get("lastRun") or {}
    return {
        "job": job,
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
