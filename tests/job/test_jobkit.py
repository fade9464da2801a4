"""The helper for Python jobs, alone and through a real service run."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from orchestrator.disk.atomic import write_json_atomic
from orchestrator.jobkit import report_progress
from tests.support import PYTHON, job_command, next_status, sse_stream


def test_without_the_service_it_prints_a_progress_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNAPSHOT_PROGRESS_FILE", raising=False)
    report_progress(45, "Fetching GitHub PRs... (5/15 repos)")
    assert capsys.readouterr().out == "PROGRESS 45 Fetching GitHub PRs... (5/15 repos)\n"


def test_it_writes_the_file_atomically_keeping_what_the_service_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot_progress.json"
    started = {"status": "running", "startedAt": "2026-01-20T10:00:00.000Z", "runId": "r-1", "trigger": "file"}
    write_json_atomic(path, {**started, "step": "Starting...", "progress": 0})
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    report_progress(150, "over the top")
    assert json.loads(path.read_text()) == {**started, "step": "over the top", "progress": 100}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp", "snapshot_progress.json"]
    assert list((tmp_path / ".tmp").iterdir()) == [], "no temp file left behind"


def test_nothing_of_an_older_run_is_carried_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snapshot_progress.json"
    old = {"status": "error", "runId": "r-0", "error": "exited with code 3", "exitCode": 3, "startedAt": "x"}
    write_json_atomic(path, old)
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    report_progress(5, "fresh")
    assert json.loads(path.read_text()) == {"status": "running", "step": "fresh", "progress": 5, "runId": "r-1"}


@pytest.mark.parametrize("lie", ["fifo", "nested-too-deep", "huge-number", "folder-symlink"])
def test_a_lying_progress_file_neither_blocks_nor_breaks_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lie: str
) -> None:
    path = tmp_path / "snapshot_progress.json"
    if lie == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
    elif lie == "nested-too-deep":
        path.write_text("[" * 100_000)
    elif lie == "huge-number":
        path.write_text('{"runId": ' + "9" * 5000 + "}")
    else:
        path.symlink_to(tmp_path)
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    report_progress(5, "still going")
    assert json.loads(path.read_text()) == {"status": "running", "step": "still going", "progress": 5, "runId": "r-1"}


@pytest.mark.process
async def test_a_job_writing_the_file_itself_shows_up_live(service_factory: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # The job reports through the helper, then blocks on the FIFO until the test has seen the report.
    script = (
        "from orchestrator.jobkit import report_progress\n"
        "report_progress(33, 'written by the job')\n"
        f"open({str(gate)!r}).read()\n"
    )
    service = service_factory("--command", job_command(script), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        doc = await next_status(events, lambda d: d["progress"]["step"] == "written by the job", timeout=5)
        assert doc["running"] is True
        shown = {key: doc["progress"][key] for key in ("status", "step", "progress", "detail")}
        assert shown == {"status": "running", "step": "written by the job", "progress": 33, "detail": None}
        assert doc["progress"]["stepStartedAt"] is not None, "the runner keeps the step the job wrote, and its start"
        file_doc = json.loads((service.data_dir / "snapshot_progress.json").read_text())
        assert file_doc["runId"] == doc["currentRun"]["runId"]
        assert file_doc["startedAt"] == doc["currentRun"]["startedAt"]
        subprocess.run([PYTHON, "-c", f"open({str(gate)!r}, 'w').close()"], check=True, timeout=10)
        done = await next_status(events, lambda d: not d["running"])
        assert {k: done["progress"][k] for k in ("status", "step", "progress")} == {
            "status": "completed",
            "step": "Completed",
            "progress": 100,
        }
        assert done["lastRun"]["step"] == "written by the job", "the run's last step, whoever reported it"


def test_a_temp_folder_swapped_for_a_symlink_is_not_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.tmp`` planted as a symlink to another folder: the job's temp file must not be made there (inotify on
    that folder sees every creation; a last file of our own marks the end of what there is to see)."""
    data, victim = tmp_path / "data", tmp_path / "victim"
    data.mkdir()
    victim.mkdir()
    (data / ".tmp").symlink_to(victim, target_is_directory=True)
    seen: list[str] = []
    done = threading.Event()

    class Handler(FileSystemEventHandler):
        def on_created(self, event: FileSystemEvent) -> None:
            name = os.path.basename(os.fsdecode(event.src_path))
            if name == "end-of-test":
                done.set()
            else:
                seen.append(name)

    observer = Observer()
    observer.schedule(Handler(), os.fspath(victim), recursive=False)
    observer.start()
    try:
        monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(data / "snapshot_progress.json"))
        monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
        report_progress(5, "past the link")
        (victim / "end-of-test").touch()
        assert done.wait(10), "inotify saw the last file"
    finally:
        observer.stop()
        observer.join(timeout=5)
    assert seen == [], "temp files made in the link's target"
    assert json.loads((data / "snapshot_progress.json").read_text())["step"] == "past the link"
    assert (data / ".tmp").is_symlink(), "the job leaves the link to the service (which replaces it)"
    assert [p.name for p in data.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()] == []
