"""A state file's saves taken on the loop and written on a worker thread: a document is never written over a
later one, a write that finds a later one on the file is stored already, and a refused one says so."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.events import Source, Trigger
from orchestrator.core.records import State
from orchestrator.store import statefile
from orchestrator.store.journal import Journal, Record
from orchestrator.store.statefile import STATE_FILE_NAME, StateFile, read_state_file
from tests.fakes import T0

WAIT = 10.0


def pending(count: int) -> State:
    state = State()
    for n in range(count):
        state = state.with_trigger(Trigger(Source.FILE, T0, f"file-{n}"))
    return state


def on_file(path: Path) -> dict[str, int]:
    """Each job's pending count as the file and its journal hold it."""
    return {job: doc["pendingCount"] for job, doc in read_state_file(path, "snapshot")[0].items()}


# Each step: ("prepare", name, job, pending) takes a save for later; ("write", name) writes it; ("save", job,
# pending) saves at once. The file's pending counts after the steps, and what each write returned.
ORDERS = {
    "written in order": (
        [("prepare", "a", "snapshot", 1), ("write", "a"), ("save", "snapshot", 2)],
        {"snapshot": 2},
        {"a": True},
    ),
    "a save on the loop before the thread's older write": (
        [("prepare", "a", "snapshot", 1), ("save", "snapshot", 2), ("write", "a")],
        {"snapshot": 2},
        {"a": True},
    ),
    "two taken, the later written first": (
        [("prepare", "a", "snapshot", 1), ("prepare", "b", "snapshot", 2), ("write", "b"), ("write", "a")],
        {"snapshot": 2},
        {"a": True, "b": True},
    ),
    "another job's later save holds the older one's change": (
        [("prepare", "a", "snapshot", 3), ("save", "report", 1), ("write", "a")],
        {"snapshot": 3, "report": 1},
        {"a": True},
    ),
}


@pytest.mark.parametrize(("steps", "expected", "results"), list(ORDERS.values()), ids=list(ORDERS))
def test_an_older_document_never_overwrites_a_newer_one(
    tmp_path: Path, steps: list[tuple[Any, ...]], expected: dict[str, int], results: dict[str, bool]
) -> None:
    file = StateFile(tmp_path / STATE_FILE_NAME)
    prepared: dict[str, Callable[[], bool]] = {}
    returned: dict[str, bool] = {}
    for step in steps:
        if step[0] == "prepare":
            prepared[step[1]] = file.job(step[2]).prepare(pending(step[3]))
        elif step[0] == "write":
            returned[step[1]] = prepared[step[1]]()
        else:
            assert file.job(step[1]).save(pending(step[2]))
    assert on_file(file.path) == expected
    assert returned == results


def test_a_refused_write_says_so_until_a_later_save_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = StateFile(tmp_path / STATE_FILE_NAME)
    view = file.job("snapshot")
    real = statefile.write_json_atomic

    def full(path: Path, document: dict[str, Any], *, durable: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def journal_full(journal: Journal, record: Record) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(statefile, "write_json_atomic", full)
    monkeypatch.setattr(Journal, "append", journal_full)
    refused = view.prepare(pending(1))
    assert not refused() and view.last_error == "No space left on device"
    assert not (tmp_path / STATE_FILE_NAME).exists()
    older = view.prepare(pending(2))
    monkeypatch.setattr(statefile, "write_json_atomic", real)
    monkeypatch.undo()
    assert view.save(pending(3)) and view.last_error == ""
    assert older(), "a later document on the file holds it"
    assert on_file(file.path) == {"snapshot": 3}


def test_a_save_on_the_loop_waits_for_a_write_in_flight_and_lands_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = StateFile(tmp_path / STATE_FILE_NAME)
    view = file.job("snapshot")
    real = statefile.write_json_atomic
    inside, release = threading.Event(), threading.Event()
    order: list[int] = []

    def slow(path: Path, document: dict[str, Any], *, durable: bool = True) -> None:
        count = document["jobs"]["snapshot"]["pendingCount"]
        if count == 1:
            inside.set()
            assert release.wait(WAIT)
        real(path, document, durable=durable)
        order.append(count)

    real_append = Journal.append

    def slow_append(journal: Journal, record: Record) -> int:
        state = record.jobs["snapshot"]
        assert state is not None
        if state["pendingCount"] == 1:
            inside.set()
            assert release.wait(WAIT)
        size = real_append(journal, record)
        order.append(state["pendingCount"])
        return size

    monkeypatch.setattr(statefile, "write_json_atomic", slow)
    monkeypatch.setattr(Journal, "append", slow_append)
    in_flight = view.prepare(pending(1))
    thread = threading.Thread(target=in_flight)
    thread.start()
    assert inside.wait(WAIT)
    later = threading.Thread(target=view.save, args=(pending(2),))
    later.start()
    release.set()
    thread.join(WAIT)
    later.join(WAIT)
    assert order == [1, 2] and on_file(file.path) == {"snapshot": 2}
