"""The run history: every run's record, of every job, in an SQLite file under the data folder.

SQLite through the standard library, in WAL mode: a crash of the service (even ``kill -9`` mid-write) leaves the
file consistent, and readers never wait for the writer. Each run is one row, keyed by its id, ordered by its
start and marked with its job (the table and its migrations: :mod:`orchestrator.store.schema`); the record
itself is stored as the same JSON the API serves, so a field added to :class:`RunRecord` needs no migration. A
file that is not a database (or is corrupt) is set aside and a new one started.

SQLite opens the file and its ``-wal``/``-shm`` (and ``-journal``) companions itself, following symlinks, so
before each opening those names are looked at without following: a symlink planted there is removed (said once;
its target is left as it is). A symlinked ``-shm`` made SQLite fail to open the history, which was then set
aside as corrupt; a symlinked main file had SQLite read and write the target. The main file is created
owner-only by us first, and SQLite gives its companions the main file's mode. Between the look and SQLite's
own open is a window; the data folder being the service user's alone (0700) is what closes it.

A record that cannot be written (no file descriptor left, a full disk, a read-only folder) is kept in memory
and written with the next record, or by :meth:`SqliteHistory.write_owed` (the runner retries on its clock), so a
run's end reaches the history while the service runs, not at the next start.

Every error of SQLite or of the file system reaches callers as
:class:`~orchestrator.store.api.StoreUnavailable`, with the same text, chained from it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.core.events import RunStatus
from orchestrator.core.records import DEFAULT_JOB, RunRecord
from orchestrator.core.steps import Step, steps_to_json
from orchestrator.disk.datadir import COMPANION_SUFFIXES, exists, open_file, remove_symlink
from orchestrator.store import schema
from orchestrator.store.api import MAX_PAGE, Page, PrunedRun, RunHistory, StoredRun

log = logging.getLogger(__name__)

__all__ = ["HISTORY_FILE_NAME", "MAX_PAGE", "Page", "RunHistory", "SqliteHistory", "read_recent"]

HISTORY_FILE_NAME = "runs.sqlite3"


class SqliteHistory:
    """The runs table (a :class:`~orchestrator.store.api.RunHistory`). Each call opens the file, does one short
    thing and closes it again: no descriptor stays open between runs (a data folder held open for writing could
    not be remounted read-only, for one), and the caller decides which thread a call runs in."""

    def __init__(self, path: Path, *, default_job: str = DEFAULT_JOB) -> None:
        self.path = path
        self.default_job = default_job
        """Whose runs recorded before a service had several jobs are (they are made its when the file is opened)."""
        self._removed: set[tuple[str, str]] = set()
        """Symlinks removed so far (name, target): each is said once, however often it is planted again."""
        self._owed: dict[str, tuple[RunRecord, str | None, tuple[Step, ...] | None]] = {}
        """Records not written yet, by run id (the latest of each run), with their log paths and steps."""
        with schema.unavailable():
            self._open()

    def _open(self) -> None:
        _guard(self.path, self._removed)
        try:
            db = schema.connect(self.path, check=True)
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.error("run history %s cannot be read (%s); set aside as %s, starting a new one", self.path, exc, aside)
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            _guard(self.path, self._removed)
            db = schema.connect(self.path)
        # On the connection just checked: each connection opens and, as the last one, removes the -wal and
        # -shm files again, which costs more than the statements of a call.
        try:
            with db:
                adopted = schema.adopt(db, self.default_job)
        finally:
            db.close()
        if adopted:
            log.info(
                "run history %s: %d run(s) recorded before there were several jobs are runs of the default job, %r",
                self.path,
                adopted,
                self.default_job,
            )

    @property
    def location(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with schema.unavailable():
            _guard(self.path, self._removed)
            db = schema.connect(self.path)
            try:
                with db:  # one transaction: committed, or rolled back on an error
                    yield db
            finally:
                db.close()

    def record(self, run: RunRecord, log_path: str | None = None, steps: tuple[Step, ...] | None = None) -> None:
        """Insert or update ``run`` (recorded when it starts, and again when it ends, with its steps), together
        with any record not written before. If the write fails, ``run`` is kept for the next write and the
        error raised."""
        _, earlier_path, earlier_steps = self._owed.pop(run.run_id, (None, None, None))
        self._owed[run.run_id] = (run, log_path or earlier_path, earlier_steps if steps is None else steps)
        self.write_owed()

    @property
    def owed(self) -> int:
        """Records that could not be written yet."""
        return len(self._owed)

    def write_owed(self) -> int:
        """Write the records kept from failed writes, in one transaction; how many. Raises as :meth:`record`
        does, keeping them all."""
        if not self._owed:
            return 0
        rows = [
            (
                run.run_id,
                schema.sortable(run.started_at),
                json.dumps(run.to_json()),
                log_path,
                None if steps is None else json.dumps(steps_to_json(steps)),
                run.job,
            )
            for run, log_path, steps in self._owed.values()
        ]
        with self._db() as db:
            db.executemany(
                "INSERT INTO runs (run_id, started_at, record, log_path, steps, job) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET record = excluded.record, job = excluded.job, "
                "log_path = COALESCE(excluded.log_path, runs.log_path), "
                "steps = COALESCE(excluded.steps, runs.steps)",
                rows,
            )
        self._owed.clear()
        return len(rows)

    def get(self, run_id: str) -> StoredRun | None:
        with self._db() as db:
            row = db.execute("SELECT record, log_path, job FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return None if row is None else schema.stored(*row)

    def steps(self, run_id: str) -> tuple[Step, ...] | None:
        with self._db() as db:
            row = db.execute("SELECT steps FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else schema.steps(row[0])

    def completed_steps(self, limit: int, *, job: str | None = None) -> tuple[tuple[StoredRun, tuple[Step, ...]], ...]:
        where, params = schema.of_job(job)
        with self._db() as db:
            rows = db.execute(
                f"SELECT record, log_path, job, steps FROM runs WHERE {where} "
                f"AND json_extract(record, '$.status') = ? ORDER BY {schema.NEWEST_FIRST} LIMIT ?",
                (*params, RunStatus.COMPLETED.value, limit),
            ).fetchall()
        return tuple(
            (schema.stored(record, log_path, its_job), schema.steps(steps)) for record, log_path, its_job, steps in rows
        )

    def unfinished(self, *, job: str | None = None) -> list[RunRecord]:
        """Runs whose row still says ``running`` (at start-up, before any run: each was interrupted)."""
        where, params = schema.of_job(job)
        with self._db() as db:
            rows = db.execute(
                f"SELECT record, log_path, job FROM runs WHERE {where} AND json_extract(record, '$.status') = ? "
                "ORDER BY started_at",
                (*params, RunStatus.RUNNING.value),
            ).fetchall()
            found = (schema.stored(*row).record() for row in rows)
            return [run for run in found if run is not None]

    def page(self, *, limit: int = 50, cursor: str | None = None, job: str | None = None) -> Page:
        """Runs newest first, ``limit`` (1 to :data:`MAX_PAGE`) of them, after ``cursor`` (a run id)."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        where, params = schema.of_job(job)
        with self._db() as db:
            if cursor is None:
                after, anchor = "", ()
            else:
                anchor = db.execute("SELECT started_at, rowid FROM runs WHERE run_id = ?", (cursor,)).fetchone()
                if anchor is None:
                    raise KeyError(cursor)
                after = " AND (started_at, rowid) < (?, ?)"
            rows = db.execute(
                f"SELECT run_id, record, log_path, job FROM runs WHERE {where}{after} "
                f"ORDER BY {schema.NEWEST_FIRST} LIMIT ?",
                (*params, *anchor, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            return Page(tuple(schema.stored(*r[1:]) for r in rows), rows[-1][0] if more and rows else None)

    def newest(self, limit: int, *, status: RunStatus, within: int, job: str | None = None) -> tuple[StoredRun, ...]:
        """Read newest first and no further than the ``limit``-th match: the usual answer is in the first rows."""
        where, params = schema.of_job(job)
        found: list[StoredRun] = []
        with self._db() as db:
            rows = db.execute(
                f"SELECT record, log_path, job FROM runs WHERE {where} ORDER BY {schema.NEWEST_FIRST} LIMIT ?",
                (*params, within),
            )
            for row in rows:
                run = schema.stored(*row)
                if run.status is status:
                    found.append(run)
                    if len(found) >= limit:
                        break
        return tuple(found)

    def run_ids(self) -> frozenset[str]:
        with self._db() as db:
            return frozenset(row[0] for row in db.execute("SELECT run_id FROM runs"))

    def count(self, *, job: str | None = None) -> int:
        where, params = schema.of_job(job)
        with self._db() as db:
            row = db.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params).fetchone()
        return int(row[0])

    def prune(self, *, keep: int, older_than: datetime | None = None) -> list[PrunedRun]:
        """Remove all but the newest ``keep`` runs of each job, and any run started before ``older_than``; the
        removed runs are returned so their logs can be removed too."""
        if keep < 0:
            raise ValueError(f"keep must be zero or more, got {keep}")
        with self._db() as db:
            # One pass over the table (kept small by this very pruning), numbering each job's runs newest first.
            doomed = db.execute(
                "SELECT run_id, log_path FROM (SELECT run_id, log_path, started_at, ROW_NUMBER() OVER "
                f"(PARTITION BY job ORDER BY {schema.NEWEST_FIRST}) AS newer FROM runs) "
                "WHERE newer > ? OR started_at < ?",
                (keep, schema.sortable(older_than) if older_than is not None else ""),
            ).fetchall()
            db.executemany("DELETE FROM runs WHERE run_id = ?", [(run_id,) for run_id, _ in doomed])
        return [PrunedRun(run_id, log_path) for run_id, log_path in doomed]


def _guard(path: Path, removed: set[tuple[str, str]]) -> None:
    """Remove symlinks where SQLite would open the history in ``path`` or its companions (each said once:
    ``removed`` holds those said so far); make the file owner-only."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in (path.name, *(path.name + suffix for suffix in COMPANION_SUFFIXES)):
            target = remove_symlink(name, dir_fd=folder)
            if target is not None and (name, target) not in removed:
                removed.add((name, target))
                log.warning(
                    "run history file %s was a symlink to %r; not followed: removed it (its target is left as it is)%s",
                    path.with_name(name),
                    target,
                    "; the history starts anew" if name == path.name else "",
                )
        # Made by us (owner-only) before SQLite makes it (0644 under the usual umask); SQLite's companions
        # take its mode. Never opened when it is there: SQLite keeps connections apart with POSIX locks on
        # the file, and closing any descriptor of it drops them all, another thread's connection's included.
        if not exists(path.name, dir_fd=folder):
            with contextlib.suppress(FileExistsError):
                os.close(open_file(path.name, os.O_RDONLY | os.O_CREAT | os.O_EXCL, dir_fd=folder))
    finally:
        os.close(folder)


def read_recent(path: Path, limit: int, *, default_job: str = DEFAULT_JOB) -> list[dict[str, Any]]:
    """The newest ``limit`` runs of every job, read without changing anything (``status`` while the service is
    down): no file is made, no journal mode set, nothing set aside (so a history of the previous version may
    have no ``job`` column yet: its runs are ``default_job``'s, as they are made when the service opens it). An
    absent or unreadable history is no runs."""
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        job = "job" if "job" in columns else "NULL"
        rows = db.execute(f"SELECT record, {job} FROM runs ORDER BY {schema.NEWEST_FIRST} LIMIT ?", (limit,))
        return [dict(schema.stored(text, None, its_job or default_job).document) for text, its_job in rows]
    except sqlite3.Error:
        return []
    finally:
        db.close()
