"""The staged replacement of a JSON file: atomic, owner-only, never through a symlink, and a fallback (nothing
done) wherever it cannot be made."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from orchestrator.disk.atomic import TEMP_FOLDER_NAME
from orchestrator.disk.staged import StagedFile


def test_a_staged_replacement_puts_the_whole_document_there_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text('{"old": true}')
    staged = StagedFile(path)
    staged.stage()
    assert staged.ready
    assert staged.replace({"status": "running", "step": "Starting…"})
    assert json.loads(path.read_text()) == {"status": "running", "step": "Starting…"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not staged.ready


def test_the_first_replacement_with_no_file_there_yet_is_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    staged = StagedFile(path)
    staged.stage()
    assert staged.replace({"n": 1})
    assert json.loads(path.read_text()) == {"n": 1}


def test_nothing_is_done_without_a_stage_and_each_stage_serves_one_replacement(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    staged = StagedFile(path)
    assert not staged.replace({"n": 1})
    assert not path.exists()
    staged.stage()
    assert staged.replace({"n": 1})
    assert not staged.replace({"n": 2})
    assert json.loads(path.read_text()) == {"n": 1}


def test_one_temp_file_at_most_is_left_and_a_discard_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    staged = StagedFile(path)
    for n in range(5):
        staged.stage()
        assert staged.replace({"n": n})
    staged.stage()
    temp = tmp_path / TEMP_FOLDER_NAME
    assert len(os.listdir(temp)) == 1  # the staged one (the old document under its name was removed)
    staged.discard()
    assert os.listdir(temp) == []
    assert json.loads(path.read_text()) == {"n": 4}


def test_a_symlink_planted_at_the_staged_name_is_replaced_never_followed(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    secret = tmp_path / "secret"
    secret.write_text("keep")
    temp = tmp_path / TEMP_FOLDER_NAME
    temp.mkdir()
    (temp / ".progress.json.staged.tmp").symlink_to(secret)
    staged = StagedFile(path)
    staged.stage()
    assert staged.replace({"n": 1})
    assert secret.read_text() == "keep"
    assert not path.is_symlink()
    assert json.loads(path.read_text()) == {"n": 1}


def test_a_folder_moved_away_since_the_stage_is_left_to_the_usual_write(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    staged = StagedFile(folder / "progress.json")
    staged.stage()
    folder.rename(tmp_path / "moved")
    folder.mkdir()
    assert not staged.replace({"n": 1})
    assert not (folder / "progress.json").exists()
    assert not (tmp_path / "moved" / "progress.json").exists()


def test_a_temp_file_swapped_since_the_stage_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    staged = StagedFile(path)
    staged.stage()
    name = tmp_path / TEMP_FOLDER_NAME / ".progress.json.staged.tmp"
    name.unlink()
    name.write_text("planted")
    assert not staged.replace({"n": 1})
    assert not path.exists()
