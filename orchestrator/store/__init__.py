"""What the service keeps: the state, the run history, the run logs and the one-service lock.

The API (:mod:`orchestrator.store.api`) is what the rest of the service uses; the embedded implementations
keep everything in the data folder: a JSON state file, an SQLite history, one log file per run and a ``flock``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.records import DEFAULT_JOB
from orchestrator.store.api import (
    MAX_PAGE,
    HistoryNotOpened,
    JobStates,
    Lock,
    Page,
    PrunedRun,
    RunHistory,
    RunLogs,
    StateStore,
    StoredRun,
    StoreUnavailable,
)
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.lock import InstanceLock
from orchestrator.store.logfiles import LogFiles
from orchestrator.store.null import NO_HISTORY, NullHistory
from orchestrator.store.statefile import STATE_FILE_NAME, StateFile

log = logging.getLogger(__name__)

__all__ = [
    "HISTORY_FILE_NAME",
    "MAX_PAGE",
    "NO_HISTORY",
    "HistoryNotOpened",
    "JobStates",
    "Lock",
    "NullHistory",
    "Page",
    "PrunedRun",
    "RunHistory",
    "RunLogs",
    "StateStore",
    "StoreUnavailable",
    "StoredRun",
    "Stores",
    "open_history",
    "open_stores",
]


def open_history(path: Path, *, default_job: str = DEFAULT_JOB) -> RunHistory:
    """The run history in ``path``, or a :class:`NullHistory` (logged) if its file cannot be made at all. Runs
    recorded before a service had several jobs are ``default_job``'s."""
    try:
        return SqliteHistory(path, default_job=default_job)
    except StoreUnavailable as exc:
        log.error("cannot open the run history %s: %s; runs go on without it", path, exc)
        return NullHistory(str(path))


@dataclass(frozen=True, slots=True)
class Stores:
    """The stores of one data folder, opened (the lock is not taken: that is the CLI's first act)."""

    states: JobStates
    history: RunHistory
    log_files: RunLogs
    lock: Lock


def open_stores(data_dir: Path, *, default_job: str = DEFAULT_JOB) -> Stores:
    """The embedded stores: everything in ``data_dir`` (which must exist). Records written before a service had
    several jobs are ``default_job``'s."""
    return Stores(
        states=StateFile(data_dir / STATE_FILE_NAME, default_job=default_job),
        history=open_history(data_dir / HISTORY_FILE_NAME, default_job=default_job),
        log_files=LogFiles(data_dir),
        lock=InstanceLock(data_dir),
    )
