"""The data folder's no-follow primitives, on real files, folders, symlinks and FIFOs: a table of what is found
at a name and what each primitive then does."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.cli.main import OWN_FILES
from orchestrator.disk.atomic import TEMP_FOLDER_NAME, InvalidDocument, read_json_object, write_json_atomic
from orchestrator.disk.datadir import ensure_folder, open_file, remove_symlink, tighten
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.store.history import SqliteHistory
from orchestrator.store.statefile import STATE_FILE_NAME, StateFile
from tests.support import umask


@contextlib.contextmanager
def folder_fd(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# What is at the name ``x`` before the call; the victim (outside) must never change.
def nothing(folder: Path, victim: Path) -> None:
    pass


def real_folder(folder: Path, victim: Path) -> None:
    (folder / "x").mkdir()


def real_file(folder: Path, victim: Path) -> None:
    (folder / "x").write_text("ours\n")


def link_to_folder(folder: Path, victim: Path) -> None:
    os.symlink(victim, folder / "x", target_is_directory=True)


def link_to_file(folder: Path, victim: Path) -> None:
    os.symlink(victim / "secret", folder / "x")


def dangling_link(folder: Path, victim: Path) -> None:
    os.symlink(victim / "not-there", folder / "x")


def fifo(folder: Path, victim: Path) -> None:
    os.mkfifo(folder / "x")


Setup = Callable[[Path, Path], None]


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    folder, victim = tmp_path / "data", tmp_path / "victim"
    folder.mkdir()
    victim.mkdir()
    (victim / "secret").write_text("not the service's\n")
    yield folder, victim
    assert sorted(os.listdir(victim)) == ["secret"], "nothing made in the target"
    assert (victim / "secret").read_text() == "not the service's\n", "nothing written to the target"


@pytest.mark.parametrize(
    ("setup", "outcome"),
    [
        (nothing, "made"),
        (real_folder, "opened"),
        (link_to_folder, "replaced"),
        (link_to_file, "replaced"),
        (dangling_link, "replaced"),
        (real_file, "ENOTDIR"),
        (fifo, "ENOTDIR"),
    ],
)
def test_ensure_folder(place: tuple[Path, Path], setup: Setup, outcome: str) -> None:
    folder, victim = place
    setup(folder, victim)
    with folder_fd(folder) as dir_fd, umask(0o022):
        if outcome == "ENOTDIR":
            with pytest.raises(NotADirectoryError):
                ensure_folder("x", dir_fd=dir_fd)
            return
        fd, removed = ensure_folder("x", dir_fd=dir_fd)
        os.close(fd)
    assert (folder / "x").is_dir() and not (folder / "x").is_symlink()
    assert (removed is not None) == (outcome == "replaced")
    if outcome == "made":
        assert mode(folder / "x") == 0o700


@pytest.mark.parametrize(
    ("setup", "flags", "outcome"),
    [
        (nothing, os.O_WRONLY | os.O_CREAT, "created"),
        (real_file, os.O_WRONLY | os.O_APPEND, "opened"),
        (link_to_file, os.O_WRONLY | os.O_APPEND, errno.ELOOP),
        (link_to_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, errno.ELOOP),
        (dangling_link, os.O_WRONLY | os.O_CREAT, errno.ELOOP),
        (dangling_link, os.O_WRONLY | os.O_CREAT | os.O_EXCL, errno.EEXIST),
        (link_to_folder, os.O_RDONLY, errno.ELOOP),
        (fifo, os.O_RDONLY, "opened"),  # without blocking: no writer is there
    ],
)
def test_open_file(place: tuple[Path, Path], setup: Setup, flags: int, outcome: str | int) -> None:
    folder, victim = place
    setup(folder, victim)
    with folder_fd(folder) as dir_fd, umask(0o022):
        if isinstance(outcome, int):
            with pytest.raises(OSError) as raised:
                open_file("x", flags, dir_fd=dir_fd)
            assert raised.value.errno == outcome
            return
        os.close(open_file("x", flags, dir_fd=dir_fd))
    if outcome == "created":
        assert mode(folder / "x") == 0o600


@pytest.mark.parametrize(
    ("setup", "removed"),
    [(nothing, False), (real_file, False), (real_folder, False), (link_to_file, True), (dangling_link, True)],
)
def test_remove_symlink(place: tuple[Path, Path], setup: Setup, removed: bool) -> None:
    folder, victim = place
    setup(folder, victim)
    existed = os.path.lexists(folder / "x")
    with folder_fd(folder) as dir_fd:
        target = remove_symlink("x", dir_fd=dir_fd)
    assert (target is not None) == removed
    assert os.path.lexists(folder / "x") == (existed and not removed)
    if removed:
        assert target is not None and target.startswith(str(victim))


def test_tighten_makes_what_the_service_owns_owner_only_and_follows_no_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside.json"
    with umask(0o022):
        data.mkdir()
        (data / "orchestrator_state.json").write_text("{}")
        (data / "logs").mkdir()
        (data / "logs" / "20260101T000000Z-0a0a0a.log").write_text("line\n")
        outside.write_text("{}")
        os.symlink(outside, data / "snapshot_progress.json")
        os.symlink(tmp_path, data / ".tmp", target_is_directory=True)
    caplog.set_level(logging.INFO)
    tighten(data, OWN_FILES)
    assert [mode(p) for p in (data, data / "logs")] == [0o700, 0o700]
    assert mode(data / "orchestrator_state.json") == 0o600
    assert mode(data / "logs" / "20260101T000000Z-0a0a0a.log") == 0o600
    assert mode(outside) == 0o644, "a link's target is not changed"
    assert (data / ".tmp").is_dir() and not (data / ".tmp").is_symlink()
    said = [r.getMessage() for r in caplog.records]
    assert sum("took group and other permissions away" in m for m in said) == 1, said
    assert sum(".tmp was a symlink" in m for m in said) == 1, said
    caplog.clear()
    tighten(data, OWN_FILES)
    assert caplog.records == [], "nothing left to say"


def test_an_atomic_write_never_follows_its_temp_folder_or_temp_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, data / TEMP_FOLDER_NAME, target_is_directory=True)
    with umask(0):
        write_json_atomic(data / "state.json", {"n": 1})
        os.rmdir(data / TEMP_FOLDER_NAME)  # planted again: replaced again, said once
        os.symlink(elsewhere, data / TEMP_FOLDER_NAME, target_is_directory=True)
        write_json_atomic(data / "state.json", {"n": 2}, durable=False)
    assert json.loads((data / "state.json").read_text()) == {"n": 2}
    assert mode(data / "state.json") == 0o600
    assert mode(data / TEMP_FOLDER_NAME) == 0o700 and not (data / TEMP_FOLDER_NAME).is_symlink()
    assert os.listdir(elsewhere) == [] and os.listdir(data / TEMP_FOLDER_NAME) == []
    assert sum("was a symlink" in r.getMessage() for r in caplog.records) == 1
    # A symlink at the final name is replaced by the rename, never written through.
    (tmp_path / "target.json").write_text("theirs")
    (data / "state.json").unlink()
    os.symlink(tmp_path / "target.json", data / "state.json")
    write_json_atomic(data / "state.json", {"n": 3})
    assert (tmp_path / "target.json").read_text() == "theirs"
    assert not (data / "state.json").is_symlink()


@pytest.mark.parametrize("name", ["runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm", "runs.sqlite3-journal"])
def test_the_history_removes_a_symlink_where_sqlite_would_open_a_file(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "victim.sqlite3"
    SqliteHistory(victim).count()  # a real database elsewhere: SQLite would happily use it through a link
    before = victim.read_bytes()
    if name != "runs.sqlite3":
        SqliteHistory(data / "runs.sqlite3").count()
    os.symlink(victim, data / name)
    with umask(0o022):
        history = SqliteHistory(data / "runs.sqlite3")
        assert history.count() == 0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(data / name)
        os.symlink(victim, data / name)
        assert history.count() == 0  # planted again: removed again, not said again
    assert victim.read_bytes() == before
    assert not (data / name).is_symlink()
    assert not (data / "runs.sqlite3.corrupt").exists()
    assert mode(data / "runs.sqlite3") == 0o600
    assert sum("was a symlink" in r.getMessage() for r in caplog.records) == 1, caplog.text


def test_tighten_leaves_the_data_folder_open_when_the_triggers_folder_is_inside_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "triggers").mkdir(parents=True, mode=0o777)
    os.chmod(data, 0o755)
    (data / "orchestrator_state.json").write_text("{}")
    os.chmod(data / "orchestrator_state.json", 0o644)
    tighten(data, OWN_FILES, shared=data / "triggers")
    assert mode(data) == 0o755, "other writers of the triggers folder still get through"
    assert mode(data / "orchestrator_state.json") == 0o600
    tighten(data, OWN_FILES, shared=tmp_path / "triggers")
    assert mode(data) == 0o700


def test_tighten_changes_only_the_services_own_files_and_only_their_group_and_other_bits(tmp_path: Path) -> None:
    """An operator may keep other files in the data folder: their modes are theirs (a script stays runnable)."""
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    made = {
        "backup.sh": 0o755,
        "notes.txt": 0o644,
        "orchestrator_state.json": 0o644,
        "orchestrator_state.json.corrupt": 0o644,
        "runs.sqlite3-wal": 0o664,
        "logs/20260101T000000Z-0a0a0a.log": 0o644,
        "logs/README": 0o644,
    }
    for name, file_mode in made.items():
        (data / name).write_text("x")
        os.chmod(data / name, file_mode)
    tighten(data, OWN_FILES)
    assert {name: mode(data / name) for name in made} == {
        "backup.sh": 0o755,
        "notes.txt": 0o644,
        "orchestrator_state.json": 0o600,
        "orchestrator_state.json.corrupt": 0o600,
        "runs.sqlite3-wal": 0o600,
        "logs/20260101T000000Z-0a0a0a.log": 0o600,
        "logs/README": 0o644,
    }


def test_the_state_and_progress_files_are_not_read_through_a_symlink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone else's JSON behind a link would be taken for the service's state (a pause, pending triggers)."""
    data = tmp_path / "data"
    data.mkdir()
    theirs = tmp_path / "theirs.json"
    theirs.write_text(json.dumps({"version": 1, "paused": {"since": "2026-01-20T10:00:00.000Z", "reason": "x"}}))
    os.symlink(theirs, data / STATE_FILE_NAME)
    os.symlink(theirs, data / PROGRESS_FILE_NAME)
    with pytest.raises(InvalidDocument, match="symlink"):
        read_json_object(data / PROGRESS_FILE_NAME)
    state = StateFile(data / STATE_FILE_NAME).job("snapshot").load()
    assert state.paused is None, "the link's target was not read"
    assert json.loads(theirs.read_text())["paused"]["reason"] == "x", "nor changed"
    assert not (data / STATE_FILE_NAME).exists() and (data / f"{STATE_FILE_NAME}.corrupt").is_symlink()
    assert sum("symlink (not followed)" in r.getMessage() for r in caplog.records) == 1
