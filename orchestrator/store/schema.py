"""The history's SQLite file: its table, the migrations of files made by earlier versions, the connection each
call of :class:`~orchestrator.store.history.SqliteHistory` opens, and a row's columns read back as values.

Every error of SQLite or of the file system reaches callers as
:class:`~orchestrator.store.api.StoreUnavailable` (through :func:`unavailable`), with the same text, chained
from it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.core.events import iso
from orchestrator.core.steps import Step, steps_from_json
from orchestrator.store.api import StoredRun, StoreUnavailable

NEWEST_FIRST = "started_at DESC, rowid DESC"
"""By start; runs that started in the same millisecond by when they were first recorded."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL,
    log_path TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
"""
"""The table as the first version made it; the columns added since are :data:`MIGRATIONS`."""
MIGRATIONS = {
    "steps": "ALTER TABLE runs ADD COLUMN steps TEXT",
    "job": "ALTER TABLE runs ADD COLUMN job TEXT",
}
"""Columns added to a history made before they existed, by name.

``steps``: a run's steps (the runs of an older history keep none: ``NULL``). A column of its own, not a field
of the record: the record is served in every page of runs, the steps only when asked.

``job``: the job a run is of (also in its record, as ``"job"``). The runs of an older history are the default
job's (:func:`adopt`)."""
INDEXES = "CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, started_at);"
"""Made once the columns they cover exist. ``runs_by_job``: one job's runs, newest first, without reading the
other jobs' (its entries end in the rowid, so it gives :data:`NEWEST_FIRST` order as it is)."""


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """SQLite's and the file system's errors as the store's one error, keeping their text and cause."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc


def connect(path: Path, *, check: bool = False) -> sqlite3.Connection:
    """A connection to the history in ``path``, its table made or brought up to date; ``check``: the whole file
    is checked too (once, at start: it reads every page)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after any crash of the process
        db.executescript(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        for column, statement in MIGRATIONS.items():
            if column not in columns:
                db.execute(statement)
        db.executescript(INDEXES)
        if check:
            db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError:
        db.close()
        raise
    db.isolation_level = "DEFERRED"  # so that ``with db:`` wraps its statements in one transaction
    return db


def sortable(at: datetime) -> str:
    """ISO-8601 UTC with a fixed width, so that text order is time order."""
    text = iso(at)
    assert text is not None
    return text


def adopt(db: sqlite3.Connection, default_job: str) -> int:
    """Make the runs recorded before a service had several jobs (their ``job`` is ``NULL``) ``default_job``'s;
    how many. Done when the history is opened, once for an upgraded file (and again for runs a previous
    version recorded in it since). Written down rather than read as the default job's at each read: those runs
    stay with the job that ran them, as its state does (the state file writes it under the job's name at its
    first save), if another job is made the default later; and one job's runs are one range of the index."""
    return db.execute("UPDATE runs SET job = ? WHERE job IS NULL", (default_job,)).rowcount


def of_job(job: str | None) -> tuple[str, tuple[str, ...]]:
    """A condition on the runs of ``job`` (every job's for ``None``) and its parameters."""
    return ("1", ()) if job is None else ("job = ?", (job,))


def stored(text: str, log_path: str | None, job: str) -> StoredRun:
    """A row as a run of ``job``, the row's. Its record names the job too, unless it was recorded before a service
    had several jobs; the last versions with one job named it ``snapshot``, the one name they knew, and the row
    was made the default job's (:func:`adopt`), whatever that is called. The row says whose it is, so that the
    record read says the same as the index it was found by, and a run in flight is closed as the job's it is."""
    document = record(text)
    if job:
        document["job"] = job
    return StoredRun.of(document, log_path)


def steps(text: str | None) -> tuple[Step, ...]:
    """Steps as stored: ``NULL`` (a run recorded before runs had steps, or without any) is none; a damaged
    value is none too (the run itself stays readable)."""
    if text is None:
        return ()
    try:
        return steps_from_json(json.loads(text))
    except (TypeError, ValueError, RecursionError):
        return ()


def record(text: str) -> dict[str, Any]:
    """A stored record. One that is not a JSON object (a damaged file, a hand edit) is a database error, so
    every caller's handling of an unreadable history covers it, and no reader task dies of a ValueError."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise sqlite3.DatabaseError(f"a run record in the history is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise sqlite3.DatabaseError("a run record in the history is not a JSON object")
    return document
