"""The triggers folder: what counts, what reason a file carries, and that taking a file consumes it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from orchestrator.sources.trigger_files import (
    MAX_TRIGGER_BYTES,
    TriggerFolder,
    is_trigger_name,
    reason_from_payload,
    write_trigger_file,
)


@pytest.mark.parametrize(
    ("name", "counts"),
    [("run-now", True), ("x.json", True), (".hidden", False), ("x.tmp", False), (".x.tmp", False), ("", False)],
)
def test_which_names_are_triggers(name: str, counts: bool) -> None:
    assert is_trigger_name(name) is counts


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "run-now"),
        (b"  \n", "run-now"),
        (b"deploy finished\n", "deploy finished"),
        (b'{"reason": "new data"}', "new data"),
        (b'{"reason": ""}', "run-now"),
        (b'{"other": 1}', "run-now"),
        (b"{not json", "{not json"),
        (b"\xff\xfe bad utf-8", "\ufffd\ufffd bad utf-8"),
        (b"line one\nline two", "line one line two"),
        (b"nul\x00byte", "nul byte"),
        (b'{"reason": "tab\\there\\u0000"}', "tab here"),
    ],
)
def test_reason_from_payload(payload: bytes, reason: str) -> None:
    assert reason_from_payload("run-now", payload) == reason


def test_take_all_consumes_trigger_files_and_leaves_the_rest(tmp_path: Path) -> None:
    (tmp_path / "run-now").write_text("")
    (tmp_path / "with-reason").write_text('{"reason": "from CI"}')
    (tmp_path / "half-written.tmp").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "a-folder").mkdir()
    taken = TriggerFolder(tmp_path).take_all()
    assert sorted((t.name, t.reason) for t in taken) == [("run-now", "run-now"), ("with-reason", "from CI")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "a-folder", "half-written.tmp"]
    assert TriggerFolder(tmp_path).take_all() == []


def test_symlink_is_a_trigger_but_its_target_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text('{"reason": "leaked"}')
    folder = tmp_path / "triggers"
    folder.mkdir()
    (folder / "link").symlink_to(secret)
    taken = TriggerFolder(folder).take_all()
    assert [(t.name, t.reason) for t in taken] == [("link", "link")]
    assert secret.read_text() == '{"reason": "leaked"}'
    assert not (folder / "link").is_symlink()


def test_fifo_is_ignored_and_does_not_block(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    os.mkfifo(tmp_path / "pipe")
    folder = TriggerFolder(tmp_path)
    assert folder.take_all() == []
    assert folder.take_all() == []
    assert sum("not a regular file" in r.message for r in caplog.records) == 1  # one line per problem


def test_payload_is_read_only_up_to_the_cap(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_TRIGGER_BYTES * 10))
    [taken] = TriggerFolder(tmp_path).take_all()
    assert taken.reason == "x" * 500
    assert not (tmp_path / "big").exists()


def test_missing_folder_is_no_error(tmp_path: Path) -> None:
    assert TriggerFolder(tmp_path / "nope").take_all() == []


def test_write_trigger_file_renames_into_place(tmp_path: Path) -> None:
    from orchestrator.core.events import utcnow

    path = write_trigger_file(tmp_path / "triggers", "nightly", utcnow())
    assert path.parent == tmp_path / "triggers"
    assert is_trigger_name(path.name)
    [taken] = TriggerFolder(path.parent).take_all()
    assert taken.reason == "nightly"


def test_other_jobs_folders_are_left_alone_without_a_word_and_any_other_folder_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("report", "stray"):
        (tmp_path / name).mkdir()
    (tmp_path / "backup").write_text("")  # where a job's folder should be: that job's watch says so
    (tmp_path / "run-now").write_text("")
    folder = TriggerFolder(tmp_path, leave_alone=frozenset({"report", "backup"}))
    with caplog.at_level(logging.WARNING):
        assert [t.name for t in folder.take_all()] == ["run-now"]
        assert folder.take_all() == []
    assert [r.getMessage() for r in caplog.records] == [
        f"trigger file 'stray' in {tmp_path} is not a regular file; ignoring it"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "report", "stray"]


def test_many_files_with_the_same_problem_are_one_line_naming_the_first_and_counting_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(50):
        os.mkfifo(tmp_path / f"fifo-{n:02d}")
    (tmp_path / "run-now").write_text("")
    folder = TriggerFolder(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert [t.name for t in folder.take_all()] == ["run-now"]
        assert folder.take_all() == [], "and said once: not again at the next look"
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"50 trigger files in {tmp_path} ('fifo-"), line
    assert line.endswith(" and 47 more): each is not a regular file; ignoring it"), line


def test_an_empty_file_is_taken_without_being_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run-now").write_text("")
    (tmp_path / "deploy").write_text("deploy 42")
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, *args: object, **kwargs: object) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording_open)
    taken = TriggerFolder(tmp_path).take_all()
    assert sorted((t.name, t.reason) for t in taken) == [("deploy", "deploy 42"), ("run-now", "run-now")]
    assert "run-now" not in opened and "deploy" in opened
