"""What inotify told of each trigger file, on a fake clock: a file whose maker opened it is waited for until its
close; one announced as created with no maker opening it (found by watchdog's walk of a folder it has just begun
to watch) is taken soon."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchdog.events import FileAttribEvent, FileClosedEvent, FileCreatedEvent, FileMovedEvent, FileOpenedEvent

from orchestrator.core.clock import FakeClock
from orchestrator.sources.writers import JUST_CREATED, UNCLOSED_SECONDS, UNHEARD_SECONDS, Writers


def entry(path: Path) -> os.DirEntry[str]:
    with os.scandir(path.parent) as listing:
        return next(e for e in listing if e.name == path.name)


def made(tmp_path: Path) -> tuple[Writers, FakeClock, Path]:
    path = tmp_path / "go"
    path.write_text("half a reason")
    clock = FakeClock(datetime.now(UTC))
    return Writers(clock), clock, path


def test_a_file_its_maker_opened_is_left_until_its_close(tmp_path: Path) -> None:
    writers, clock, path = made(tmp_path)
    assert writers.event_delay(FileCreatedEvent(os.fspath(path))) == UNHEARD_SECONDS
    assert writers.event_delay(FileOpenedEvent(os.fspath(path))) == UNCLOSED_SECONDS
    clock.advance(timedelta(seconds=30))
    assert writers.leave(entry(path)) == "being written"
    assert writers.event_delay(FileClosedEvent(os.fspath(path))) == 0
    assert writers.leave(entry(path)) is None


def test_a_touch_sets_the_times_of_a_file_being_written_and_only_its_close_asks_for_a_look(tmp_path: Path) -> None:
    writers, clock, path = made(tmp_path)
    assert writers.event_delay(FileCreatedEvent(os.fspath(path))) == UNHEARD_SECONDS
    assert writers.event_delay(FileOpenedEvent(os.fspath(path))) == UNCLOSED_SECONDS
    assert writers.event_delay(FileAttribEvent(os.fspath(path))) is None, "a look now would leave it"
    assert writers.event_delay(FileClosedEvent(os.fspath(path))) == 0
    assert writers.event_delay(FileAttribEvent(os.fspath(path))) == 0, "its times set again once it is whole"
    clock.advance(timedelta(seconds=UNCLOSED_SECONDS))
    other = tmp_path / "other"
    other.write_text("")
    writers.event_delay(FileCreatedEvent(os.fspath(other)))
    writers.event_delay(FileOpenedEvent(os.fspath(other)))
    clock.advance(timedelta(seconds=UNCLOSED_SECONDS))
    assert writers.event_delay(FileAttribEvent(os.fspath(other))) == 0, "a writer never closing is waited for no more"


def test_a_file_nobody_was_heard_opening_is_taken_soon(tmp_path: Path) -> None:
    writers, clock, path = made(tmp_path)
    assert writers.event_delay(FileCreatedEvent(os.fspath(path))) == UNHEARD_SECONDS
    assert writers.leave(entry(path)) == JUST_CREATED, "its maker's open may not have been heard yet"
    clock.advance(timedelta(seconds=UNHEARD_SECONDS))
    assert writers.leave(entry(path)) is None
    # Our own read of it, as it is taken, makes no writer of us: were it left (its trigger not saved), the next
    # look takes it again at once.
    assert writers.event_delay(FileOpenedEvent(os.fspath(path))) is None
    assert writers.leave(entry(path)) is None


def test_a_writer_that_never_closes_is_waited_for_at_most_a_minute(tmp_path: Path) -> None:
    writers, clock, path = made(tmp_path)
    writers.event_delay(FileCreatedEvent(os.fspath(path)))
    writers.event_delay(FileOpenedEvent(os.fspath(path)))
    clock.advance(timedelta(seconds=UNCLOSED_SECONDS))
    assert writers.leave(entry(path)) is None


def test_news_of_a_whole_file_says_no_more_than_its_age_once_it_is_old(tmp_path: Path) -> None:
    """The deletion of a file we take is not heard: a file made anew under its name, its own events not heard
    yet, is as new as it is, whatever was heard of the one before."""
    path = tmp_path / "go"
    clock = FakeClock(datetime.now(UTC) - timedelta(seconds=0.1))  # a file written now is 0.1 s in its future
    writers = Writers(clock)
    path.write_text("")
    assert writers.event_delay(FileMovedEvent("", os.fspath(path))) == 0
    assert writers.leave(entry(path)) is None, "renamed into place whole: taken at once"
    clock.advance(timedelta(seconds=UNHEARD_SECONDS))
    path.unlink()
    path.write_text("half a reason")  # its writer's events are on their way
    assert writers.leave(entry(path)) == JUST_CREATED
