"""The store's seam: what the rest of the service may ask of the state, the run history, the run log files and
the one-service lock, whatever keeps them (files in the data folder, or a database server).

Every implementation hands out records (frozen dataclasses), never rows or dicts, and raises one error,
:class:`StoreUnavailable`, for any I/O or database failure, chained from its own: callers catch that and nothing
of the back end. An implementation is proven by the contract suite in ``tests/store/test_contract.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from orchestrator.core.events import RunStatus, parse_iso
from orchestrator.core.records import DEFAULT_JOB, RunRecord, State
from orchestrator.core.steps import Step

MAX_PAGE = 500
"""The most runs one page holds."""


class StoreUnavailable(Exception):
    """The store cannot be read or written now (I/O error, a broken database, a full disk). ``str()`` is the
    back end's own reason; the back end's exception is the ``__cause__``."""


class HistoryNotOpened(StoreUnavailable):
    """The history could not be opened when the service started (said then, in the service's log): reads are
    refused with this until the next start."""

    def __init__(self) -> None:
        super().__init__("the run history could not be opened; see the service's log")


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run as the history keeps it. ``document`` is the record exactly as it was written (what the API
    serves, byte for byte); the fields beside it are read from it once, by the store."""

    run_id: str
    document: Mapping[str, Any]
    log_path: str | None = None
    """Where the run's log is, relative to the data folder (``None``: the run has no log)."""

    @property
    def job(self) -> str:
        """The job this is a run of."""
        job = self.document.get("job")
        return job if isinstance(job, str) and job else DEFAULT_JOB

    @property
    def status(self) -> RunStatus | None:
        try:
            return RunStatus(str(self.document.get("status")))
        except ValueError:
            return None

    @property
    def finished_at(self) -> datetime | None:
        return parse_iso(self.document.get("finishedAt"))

    @property
    def duration_seconds(self) -> float | None:
        duration = self.document.get("durationSeconds")
        return float(duration) if isinstance(duration, int | float) else None

    def record(self) -> RunRecord | None:
        """The run as a :class:`RunRecord` (``None`` if the stored document is not one)."""
        return RunRecord.from_json(dict(self.document))

    @classmethod
    def of(cls, document: Mapping[str, Any], log_path: str | None = None) -> StoredRun:
        return cls(str(document.get("runId")), document, log_path)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of runs, newest first; ``next_cursor`` asks for the page after it (``None``: no more)."""

    runs: tuple[StoredRun, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PrunedRun:
    """A run removed from the history, with where its log was (to be removed too)."""

    run_id: str
    log_path: str | None


class RunHistory(Protocol):
    """Every run's record, of every job. Each call is short and blocking: async callers run it on a worker
    thread. The reads that list runs take ``job``: that job's runs only (``None``: every job's). A run recorded
    before a service had several jobs is the default job's (the history is told its name when opened)."""

    @property
    def location(self) -> str:
        """Where the history is, for messages (a file's path, a server's address without secrets)."""

    def record(self, run: RunRecord, log_path: str | None = None, steps: tuple[Step, ...] | None = None) -> None:
        """Insert or update ``run``, with any record owed from before; ``steps`` (the run's steps, kept with it
        and removed with it) replace those recorded before, ``None`` leaves them. A failed write keeps ``run``
        owed (see :attr:`owed`) and raises :class:`StoreUnavailable`."""

    @property
    def owed(self) -> int:
        """Records that could not be written yet."""

    def write_owed(self) -> int:
        """Write the owed records at once; how many. Raises as :meth:`record` does, keeping them all."""

    def get(self, run_id: str) -> StoredRun | None: ...

    def steps(self, run_id: str) -> tuple[Step, ...] | None:
        """The steps recorded with ``run_id`` (none for a run recorded without any); ``None`` if no such run."""

    def completed_steps(self, limit: int, *, job: str | None = None) -> tuple[tuple[StoredRun, tuple[Step, ...]], ...]:
        """The newest ``limit`` completed runs, newest first, each with its steps."""

    def unfinished(self, *, job: str | None = None) -> list[RunRecord]:
        """Runs still recorded as ``running``, oldest first."""

    def page(self, *, limit: int = 50, cursor: str | None = None, job: str | None = None) -> Page:
        """Runs newest first, ``limit`` (1 to :data:`MAX_PAGE`) of them, after ``cursor`` (a run id; ``KeyError``
        if it names no run; ``ValueError`` for a limit out of range)."""

    def newest(self, limit: int, *, status: RunStatus, within: int, job: str | None = None) -> tuple[StoredRun, ...]:
        """Up to ``limit`` runs that ended with ``status``, newest first, among the newest ``within`` runs."""

    def run_ids(self) -> frozenset[str]:
        """The ids of every run recorded, of every job."""

    def count(self, *, job: str | None = None) -> int: ...

    def prune(self, *, keep: int, older_than: datetime | None = None) -> list[PrunedRun]:
        """Remove all but the newest ``keep`` runs of each job, and any started before ``older_than``; the
        removed runs. Each job keeps its own (a job that runs every minute must not push out a nightly job's
        runs), those of jobs no longer configured too, until ``older_than`` takes them."""


class StateStore(Protocol):
    """One job's :class:`State`. Never raises: a damaged state is set aside and a fresh one loaded, and a
    save that fails is said and retried by the next save (the service works on from memory)."""

    @property
    def last_error(self) -> str:
        """Why the last save failed (empty after a good one)."""

    def load(self) -> State: ...

    def save(self, state: State) -> bool:
        """``True`` if ``state`` is stored."""

    def prepare(self, state: State) -> Callable[[], bool]:
        """:meth:`save` in two halves: ``state`` taken now, in the order of saves, and the returned call, which
        may be made on another thread, stores it (``True`` if stored). Saves are stored in the order they were
        taken: a later one is never overwritten by this one (it holds every change this one holds)."""


class JobStates(Protocol):
    """Every job's :class:`State`, kept together, each job's seen through its own :class:`StateStore`. A job's save
    keeps every other job's state, the states of jobs no longer configured included."""

    def job(self, name: str) -> StateStore:
        """``name``'s state (a job never saved has a fresh one)."""

    def jobs(self) -> frozenset[str]:
        """The jobs a state is kept for, configured or not."""

    def close(self) -> None:
        """At a clean stop, once no job saves any more: anything kept aside for speed (a journal) is folded in."""


class RunLogs(Protocol):
    """The run log files: one append-only log per run, named by the history's ``log_path``. Reads and writes
    are blocking (for a worker thread) and raise ``OSError``: a log that cannot be read is gone (removed by
    retention, or a symlink refused), an answer of its own (404) that tells the system's reason."""

    @property
    def folder(self) -> Path: ...

    def relative_path(self, run_id: str) -> str:
        """Where ``run_id``'s log is, relative to the data folder (as the history records it)."""

    def path_of(self, relative: str | None) -> Path | None:
        """The file a history's ``log_path`` names, if it is a run log of this store (else ``None``)."""

    def append(self, run_id: str, data: bytes, *, first: bool) -> None:
        """Add ``data`` to ``run_id``'s log (``first``: start the log anew)."""

    def read(self, path: Path, start: int, end: int) -> bytes: ...

    def size(self, path: Path) -> int: ...

    def names(self) -> list[str]:
        """The log files there are (``FileNotFoundError`` if there is no folder yet)."""

    def remove(self, names: Sequence[str]) -> None: ...


class Lock(Protocol):
    """One service per data folder: held for the process's life, dropped by the system when it dies. Taken
    before anything else starts, so its failures stay the system's own (``OSError``, whose ``strerror`` the CLI
    shows as it is)."""

    def acquire(self, holder: dict[str, Any]) -> None:
        """Take the lock, noting ``holder`` for a second instance's error message, or raise ``AlreadyLocked``."""

    def release(self) -> None: ...
