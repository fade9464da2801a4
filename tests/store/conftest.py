"""The store implementations the contract suite runs over, one fixture param each.

A back end is its stores plus what a test needs to do to them from outside: break the history (the file or
the database goes away), mend it, damage the state, open the same stores again, and take a second lock on the
same data. A PostgreSQL store is one more param here (a database per test, broken by dropping its table or
stopping the server)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.store import HISTORY_FILE_NAME, Stores, open_stores
from orchestrator.store.journal import JOURNAL_FILE_NAME
from orchestrator.store.statefile import STATE_FILE_NAME


@dataclass
class Backend:
    name: str
    stores: Stores
    reopen: Callable[[], Stores]
    break_history: Callable[[], None]
    mend_history: Callable[[], None]
    damage_state: Callable[[bytes], None]
    break_state: Callable[[], None]
    mend_state: Callable[[], None]


def embedded(data: Path) -> Backend:
    data.mkdir()
    history_file = data / HISTORY_FILE_NAME
    state_file = data / STATE_FILE_NAME
    journal = data / JOURNAL_FILE_NAME

    def break_history() -> None:
        # A folder where the database was: every open of it fails, as on a file system gone read-only or away.
        for name in (HISTORY_FILE_NAME, f"{HISTORY_FILE_NAME}-wal", f"{HISTORY_FILE_NAME}-shm"):
            (data / name).unlink(missing_ok=True)
        history_file.mkdir()

    def mend_history() -> None:
        shutil.rmtree(history_file)

    def break_state() -> None:
        for path in (state_file, journal):  # a save goes to either
            path.unlink(missing_ok=True)
            path.mkdir()
            (path / "keep").write_text("a folder the state cannot replace")

    def mend_state() -> None:
        shutil.rmtree(state_file)
        shutil.rmtree(journal)

    return Backend(
        name="embedded",
        stores=open_stores(data),
        reopen=lambda: open_stores(data),
        break_history=break_history,
        mend_history=mend_history,
        damage_state=state_file.write_bytes,
        break_state=break_state,
        mend_state=mend_state,
    )


BACKENDS: dict[str, Callable[[Path], Backend]] = {"embedded": embedded}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield BACKENDS[request.param](tmp_path / "data")
