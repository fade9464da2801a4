"""Who a shared watch tells of what, as a table; and a folder that cannot be watched leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import (
    DirDeletedEvent,
    DirModifiedEvent,
    EventsLostEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from orchestrator.sources.watchhub import Routes, Subscription, WatchHub, WatchKey


def inotify_instances() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    return count


def in_use() -> tuple[int, int]:
    """Inotify instances and threads of this process."""
    return inotify_instances(), threading.active_count()


# ------------------------------------------------------------------------------------------- who is told
def subscriber(folder: str, names: set[str] | None = None) -> Subscription:
    return Subscription(WatchKey("/t", recursive=True, full_events=True), folder, _names(names), lambda _: None)


def _names(names: set[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


EVERY = subscriber("/t")
ONLY_A = subscriber("/t", {"a"})
ONLY_B = subscriber("/t", {"b", "c"})
SUB = subscriber("/t/sub")
SUBSCRIBERS = [EVERY, ONLY_A, ONLY_B, SUB]


@pytest.mark.parametrize(
    ("event", "told"),
    [
        pytest.param(FileCreatedEvent("/t/a"), [EVERY, ONLY_A], id="an entry, by name"),
        pytest.param(FileClosedEvent("/t/d"), [EVERY], id="an entry nobody named"),
        pytest.param(FileMovedEvent("/t/a", "/t/b"), [EVERY, ONLY_A, ONLY_B], id="a move: both names, each once"),
        pytest.param(FileMovedEvent("", "/t/c"), [EVERY, ONLY_B], id="a move in from elsewhere"),
        pytest.param(FileCreatedEvent("/t/sub/x"), [SUB], id="an entry of a sub-folder"),
        pytest.param(FileCreatedEvent("/t/sub/deeper/x"), [], id="deeper than any subscriber"),
        pytest.param(DirDeletedEvent("/t/sub"), [EVERY, SUB], id="a sub-folder: its parent's entry, and itself"),
        pytest.param(DirDeletedEvent("/t"), [EVERY, ONLY_A, ONLY_B], id="the folder itself: all its subscribers"),
        pytest.param(DirModifiedEvent("/t"), [], id="a folder's modified: an echo"),
        pytest.param(DirModifiedEvent("/t/sub"), [], id="a sub-folder's modified: an echo"),
        pytest.param(EventsLostEvent("/t", is_directory=True), SUBSCRIBERS, id="events lost: everyone"),
        pytest.param(FileCreatedEvent("/elsewhere/a"), [], id="elsewhere"),
    ],
)
def test_who_is_told_of_an_event(event: FileSystemEvent, told: list[Subscription]) -> None:
    assert list(Routes(SUBSCRIBERS).targets(event)) == told


@pytest.fixture
def hub() -> Iterator[WatchHub]:
    hub = WatchHub()
    yield hub
    hub.stop()


async def test_a_folder_that_cannot_be_watched_leaves_nothing_running(tmp_path: Path, hub: WatchHub) -> None:
    before = in_use()
    (tmp_path / "a-file").write_text("")
    for missing_or_not_a_folder in (tmp_path / "missing", tmp_path / "a-file"):
        with pytest.raises(OSError):
            hub.subscribe(missing_or_not_a_folder, lambda _: None)
    assert (hub.observers, in_use()) == (0, before)
