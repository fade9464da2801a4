"""The state file: every job's :class:`~orchestrator.core.records.State` in one JSON document, written atomically.

``{"version": 2, "jobs": {"snapshot": {...}, "report": {...}}}``, each job's entry the document
:meth:`State.to_json <orchestrator.core.records.State.to_json>` makes. One file for all jobs, not one per job:
one writer and one atomic replace (temp file, fsync, rename) whatever the number of jobs, and a job that is
renamed or removed leaves no file behind. The price is that each save writes every job's state (a few KiB each).

A document of the previous version (one job's state at the top, ``"version": 1``) is the default job's state:
an upgrade keeps its last run, cooldown, pending triggers, pause and run in flight. The first save writes it
back as version 2.

Each job sees the file through its own :class:`JobStateStore` (the :class:`~orchestrator.store.api.StateStore`
the runner uses). A save writes that job's new state together with every other job's last known one (as last
read or saved), the states of jobs no longer configured included: a job removed from the jobs file finds its
pending triggers and its pause again when it comes back.

A save is most often one record appended to the journal beside the file (:mod:`orchestrator.store.journal`:
the states that changed, one ``fdatasync``); the file is written whole at the first save after a start that
found records in the journal, once the journal is big, after a save failed, and at a clean stop, and then says
up to which record it holds (``"journal"``). What the state is, is the file with the journal's records after
that one replayed on it (:func:`read_state_file`, for every reader).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.core.records import DEFAULT_JOB, State
from orchestrator.core.streak import Streak
from orchestrator.disk.atomic import InvalidDocument, read_json_object, write_json_atomic
from orchestrator.store.journal import COMPACT_BYTES, JOURNAL_FILE_NAME, Journal, Record

log = logging.getLogger(__name__)

STATE_FILE_NAME = "orchestrator_state.json"
STATE_FILE_VERSION = 2
MAX_STATE_FILE_BYTES = 64 << 20
"""Largest state file read. A job's state is bounded (a hundred triggers by name, reasons of 500 characters), but
the file holds every job's, so it may be far bigger than the 1 MiB other documents are held to."""


def jobs_in(document: Mapping[str, Any], default_job: str) -> dict[str, dict[str, Any]] | None:
    """Each job's state document in a state file's ``document``, by job. A document without ``jobs`` (version
    1) is ``default_job``'s state, its runs included; ``None`` if ``jobs`` is not an object (a damaged file). A
    job's entry that is not an object is left out (that job starts afresh)."""
    if "jobs" not in document:
        return {default_job: _one_jobs(document, default_job)} if document else {}
    jobs = document["jobs"]
    if not isinstance(jobs, dict):
        return None
    return {str(name): doc for name, doc in jobs.items() if isinstance(doc, dict)}


def _one_jobs(document: Mapping[str, Any], job: str) -> dict[str, Any]:
    """A version-1 state as ``job``'s, its runs named so. The last versions with one job named them ``snapshot``,
    the one name they knew; the default job may be called otherwise now, and its state must not hold another
    job's runs (a run in flight would be closed as that job's)."""
    state = dict(document)
    for key in ("lastRun", "current"):
        run = state.get(key)
        if isinstance(run, dict):
            state[key] = {**run, "job": job}
    return state


def read_state_file(path: Path, default_job: str) -> tuple[dict[str, dict[str, Any]], int, int]:
    """Each job's state document (see :func:`jobs_in`) in the state file at ``path`` with its journal's records
    replayed; the last record's number, and the journal's size (-1: no file, or one of an older version: to be
    written whole). No file: none. ``OSError`` or
    :class:`~orchestrator.disk.atomic.InvalidDocument` if the file cannot be used (the journal's bad tail is
    not: reading stops there)."""
    try:
        document = read_json_object(path, MAX_STATE_FILE_BYTES)
    except FileNotFoundError:
        document = {}
    jobs = jobs_in(document, default_job)
    if jobs is None:
        raise InvalidDocument(path, "its 'jobs' is not an object")
    if "jobs" in document and len(jobs) < len(document["jobs"]):
        damaged = sorted(set(document["jobs"]) - set(jobs))
        log.warning("state file %s: the state of %s is damaged; starting it afresh", path, damaged)
    after = document.get("journal", 0)
    records, last, size = Journal(path.with_name(JOURNAL_FILE_NAME)).read(
        after if isinstance(after, int) else 0, MAX_STATE_FILE_BYTES
    )
    for record in records:
        for name, state in record.jobs.items():
            if state is None:
                jobs.pop(name, None)
            else:
                jobs[name] = state
    return jobs, last, size if "journal" in document else -1


class StateFile:
    """Every job's state in one file; :meth:`job` is one job's view of it.

    One per file in a process: it holds each job's state as last read or saved, and writes them all on each
    save (the process is the file's one writer, so what it holds is never older than the file). A save is
    prepared (the document copied, numbered) and then written, both at once by :meth:`JobStateStore.save`, or
    the writing left to a worker thread by :meth:`JobStateStore.prepare`; writes are made one at a time, and a
    document is never written after a later one (that one holds its changes already)."""

    def __init__(self, path: Path, *, default_job: str = DEFAULT_JOB) -> None:
        self.path = path
        self.default_job = default_job
        """Whose state a document of the previous version is."""
        self._known: dict[str, dict[str, Any]] | None = None
        """Each job's state document as last read or saved; ``None`` until the file is first read."""
        self._views: dict[str, JobStateStore] = {}
        self._parsed: tuple[object, dict[str, dict[str, Any]]] | None = None
        """The file's jobs as last parsed, with the file's identity then (device, inode, size, mtime): a
        hundred jobs loading at start read and parse it once, not once each."""
        self._saves = Streak()
        self._lock = threading.Lock()
        """Held to read or change what is known (short: never across a write)."""
        self._seq = 0
        """The last save prepared (each save's document is numbered in the order the saves were asked for)."""
        self._writing = threading.Lock()
        """Held across a write of the file."""
        self._written = 0
        """The last save whose document is on the file (or a later one's, which holds it)."""
        self._journal = Journal(path.with_name(JOURNAL_FILE_NAME))
        self._on_disk: dict[str, dict[str, Any]] | None = None
        """Each job's state as the file and its journal hold it (``None``: not known: the next save writes the
        file whole). Guarded by ``_writing``, as the three below."""
        self._record = 0
        """The last journal record's number (the file holds the records up to its own ``journal``)."""
        self._journal_bytes = 0
        self._whole_next = False
        """The next save writes the file whole (the journal holds records from before this start, is big, or
        a save failed: what the journal holds is not known)."""

    def job(self, name: str) -> JobStateStore:
        """``name``'s state (the same view each time it is asked for)."""
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = JobStateStore(self, name)
        return view

    def jobs(self) -> frozenset[str]:
        """The jobs a state is kept for, configured or not."""
        with self._lock:
            return frozenset(self._all())

    def _load(self, job: str) -> State:
        """``job``'s state as the file has it now (read each time, as a restart would). The other jobs' states
        read from it are taken only for jobs not known yet: for the others, what was last saved is newer, or as
        new (a save that failed is still owed to the file)."""
        with self._lock:
            found = self._read()
            if self._known is None:
                self._known = {}
            known = self._known
            for name, doc in found.items():
                known.setdefault(name, doc)
            if job in found:
                known[job] = found[job]
            else:
                known.pop(job, None)
            return State.from_json(known.get(job, {}), job=job)

    def _save(self, job: str, state: State) -> str:
        """Write the file with ``job``'s ``state`` and every other job's last known one; why it failed, or ``""``."""
        seq, document = self._prepare(job, state)
        return self._write(seq, document)

    def _prepare(self, job: str, state: State) -> tuple[int, dict[str, Any] | str]:
        """The next document to write, with ``job``'s ``state``, and its place in the order of saves; or why it
        cannot be written. A file never read is read first, and never written over if it cannot be (it may hold
        other jobs' states; only a load, which stands for a start, sets a damaged file aside). Short: the
        writing is :meth:`_write`'s, which may run on another thread."""
        with self._lock:
            self._seq += 1
            try:
                if self._known is None:
                    self._known = self._parse()
            except (InvalidDocument, OSError) as exc:
                return self._seq, _why(exc)
            self._known[job] = state.to_json()
            # A copy of the outer mapping: each job's document is replaced on a change, never changed in place.
            return self._seq, {"version": STATE_FILE_VERSION, "jobs": dict(self._known)}

    def _write(self, seq: int, document: dict[str, Any] | str) -> str:
        """Write ``document`` (prepared as save ``seq``) unless a later one is on the file already: every
        document holds all the changes made before it was prepared, so that one stands for this one. Saves
        are written one at a time, from any thread. Why it failed, or ``""``."""
        with self._writing:
            if isinstance(document, str):
                error = document  # not even prepared: a later document does not hold it
            elif self._written >= seq:
                error = ""
            else:
                try:
                    self._store(document["jobs"])
                except (OSError, ValueError) as exc:
                    error = _why(exc)
                    self._whole_next = True
                else:
                    error, self._written = "", seq
            if error and self._saves.failed():
                log.error("cannot save state to %s: %s (keeping it in memory; will retry)", self.path, error)
            elif not error and self._saves.recovered():
                log.info("state saved to %s again", self.path)
            return error

    def _store(self, jobs: dict[str, dict[str, Any]]) -> None:
        """Put ``jobs`` on disk: the states that changed as one journal record, or the file whole. Called with
        ``_writing`` held."""
        on_disk = self._on_disk
        if on_disk is None or self._whole_next or self._journal_bytes >= COMPACT_BYTES:
            self._compact(jobs)
            return
        # A job's state document is replaced on each change, never changed in place: identity says what changed.
        changed: dict[str, dict[str, Any] | None] = {n: s for n, s in jobs.items() if on_disk.get(n) is not s}
        changed.update({name: None for name in on_disk.keys() - jobs.keys()})
        if not changed:
            return
        self._record += 1  # never taken back: a record that failed may be on disk, numbered so
        self._journal_bytes = self._journal.append(Record(self._record, changed))
        self._on_disk = dict(jobs)

    def _compact(self, jobs: dict[str, dict[str, Any]]) -> None:
        """Write the file whole, holding every record so far, then empty the journal."""
        self._on_disk = None
        write_json_atomic(self.path, {"version": STATE_FILE_VERSION, "jobs": jobs, "journal": self._record})
        self._on_disk, self._whole_next = dict(jobs), False
        with contextlib.suppress(OSError):  # its records are skipped from now on anyway
            self._journal.clear()
            self._journal_bytes = 0

    def close(self) -> None:
        """At a clean stop: the journal's records go into the file, which then holds the whole state alone."""
        with self._lock:
            known = dict(self._known) if self._known is not None else None
        with self._writing:
            if known is not None and self._journal_bytes:
                with contextlib.suppress(OSError, ValueError):  # the journal keeps them; the next start reads it
                    self._compact(known)

    def _all(self) -> dict[str, dict[str, Any]]:
        if self._known is None:
            self._known = self._read()
        return self._known

    def _read(self) -> dict[str, dict[str, Any]]:
        """Every job's state document in the file; none if there is no file. A file that cannot be used is set
        aside (kept for a look) and every job starts afresh: a damaged state must not stop the service."""
        try:
            return self._parse()
        except (InvalidDocument, OSError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt")
            for path in (self.path, self._journal.path):  # the journal's records are about that file
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_name(f"{path.name}.corrupt"))
            with self._writing:
                self._on_disk = None  # written whole at the next save
            log.warning("state file %s is unusable (%s); moved it to %s and starting fresh", self.path, exc, aside)
            return {}

    def _parse(self) -> dict[str, dict[str, Any]]:
        """Every job's state document in the file and its journal (none if there is no file); raises ``OSError``
        or :class:`~orchestrator.disk.atomic.InvalidDocument` if the file cannot be read."""
        identity = (_identity(self.path), _identity(self._journal.path))
        if self._parsed is not None and self._parsed[0] == identity:
            return dict(self._parsed[1])
        with self._writing:  # what is on disk, with no save half-way
            jobs, last, size = read_state_file(self.path, self.default_job)
            self._record = max(self._record, last)
            self._on_disk, self._journal_bytes = dict(jobs), max(size, 0)
            # Written whole at the first save: records from before this start (a crash), no file yet, or one of
            # an older version.
            self._whole_next = self._whole_next or size != 0
        self._parsed = (identity, jobs)
        return dict(jobs)


def _identity(path: Path) -> tuple[int, int, int, int]:
    """Device, inode, size and change time (zeros for no file): what says a file was not changed since."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (0, 0, 0, 0)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class JobStateStore:
    """One job's state in a :class:`StateFile` (a :class:`~orchestrator.store.api.StateStore`). A save that
    fails is logged once per streak and retried by the next save (of any job): the service keeps working from
    memory rather than dying because the disk is full."""

    def __init__(self, file: StateFile, job: str) -> None:
        self.file = file
        self.job = job
        self.last_error = ""
        """Why this job's last save failed (empty after a good one): said to whoever was refused for it."""

    @property
    def path(self) -> Path:
        return self.file.path

    def load(self) -> State:
        return self.file._load(self.job)

    def save(self, state: State) -> bool:
        self.last_error = self.file._save(self.job, state)
        return not self.last_error

    def prepare(self, state: State) -> Callable[[], bool]:
        seq, document = self.file._prepare(self.job, state)

        def write() -> bool:
            self.last_error = self.file._write(seq, document)
            return not self.last_error

        return write


def _why(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
