"""Real inotify: the observer's emitter pairs renames by a lookup, and still tells each rename as watchdog does
(in from elsewhere, within the folder, out of it), in order, however many come at once."""

from __future__ import annotations

import os
import queue
from pathlib import Path

from watchdog.events import FileDeletedEvent, FileMovedEvent, FileSystemEvent

from orchestrator.sources import inotifyfast
from orchestrator.sources.observer import SharedObserver
from orchestrator.sources.trigger_files import OWN_REMOVALS, TriggerFolder

WAIT = 5.0


def test_renames_in_within_and_out_are_told_as_moves_in_order(tmp_path: Path) -> None:
    (watched := tmp_path / "w").mkdir()
    (elsewhere := tmp_path / "elsewhere").mkdir()
    shared = SharedObserver()
    heard: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
    watch = shared.schedule(os.fspath(watched), recursive=False, handle=heard.put)
    try:
        assert shared._observer is not None
        assert {type(e) for e in shared._observer.emitters} == {inotifyfast._Emitter}
        names = [f"f{n:04d}" for n in range(2000)]
        for name in names:
            (elsewhere / name).touch()
        while not heard.empty():
            heard.get()
        for name in names:
            os.rename(elsewhere / name, watched / name)
        os.rename(watched / names[0], watched / "renamed")  # within: one event, both names
        os.rename(watched / names[1], elsewhere / "out")  # out: told once watchdog has waited for its pair
        expected = [FileMovedEvent("", os.fspath(watched / name)) for name in names]
        expected.append(FileMovedEvent(os.fspath(watched / names[0]), os.fspath(watched / "renamed")))
        expected.append(FileMovedEvent(os.fspath(watched / names[1]), ""))
        moves = []
        while len(moves) < len(expected):
            event = heard.get(timeout=WAIT)
            if isinstance(event, FileMovedEvent):
                moves.append(event)
        assert moves == expected
    finally:
        shared.unschedule(watch)
    assert not shared.running


def test_the_deletion_of_a_trigger_file_we_take_is_not_told_and_anyone_elses_is(tmp_path: Path) -> None:
    (watched := tmp_path / "w").mkdir()
    shared = SharedObserver()
    heard: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
    watch = shared.schedule(os.fspath(watched), recursive=False, handle=heard.put)
    try:
        (watched / "ours").touch()
        folder = TriggerFolder(watched)
        assert [taken.name for taken in folder.take_all()] == ["ours"]
        folder.close()
        (watched / "theirs").touch()
        os.unlink(watched / "theirs")  # after ours: once its deletion is told, ours would have been
        deleted = []
        while os.fspath(watched / "theirs") not in deleted:
            event = heard.get(timeout=WAIT)
            if isinstance(event, FileDeletedEvent):
                deleted.append(event.src_path)
        assert os.fspath(watched / "ours") not in deleted
        assert not OWN_REMOVALS, "every removal of ours claimed"
    finally:
        shared.unschedule(watch)
