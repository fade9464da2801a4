"""Fault injection: the service is killed (SIGKILL) while its last saves are records in the state file's
journal, not yet folded into the file. Nothing of them is lost: ``status`` from the data folder shows them, the
next start loads them, and its clean stop folds them into the file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store.journal import JOURNAL_FILE_NAME
from orchestrator.store.statefile import STATE_FILE_NAME
from tests.faults.harness import FileChanges
from tests.support import PYTHON, saved_state

pytestmark = pytest.mark.process


async def until_completed(data: Path, other_than: set[str]) -> str:
    """The id of a completed last run not in ``other_than``, once the state says so."""
    changes = FileChanges(data / JOURNAL_FILE_NAME)
    try:

        def done() -> bool:
            try:
                last = saved_state(data)["lastRun"] or {}
            except (OSError, KeyError, ValueError):
                return False
            return last.get("status") == "completed" and last.get("runId") not in other_than

        await changes.until(done, "a completed run in the state")
    finally:
        changes.close()
    return str(saved_state(data)["lastRun"]["runId"])


async def test_runs_saved_only_in_the_journal_survive_a_kill(service_factory: Any, tmp_path: Path) -> None:
    service = service_factory("--command", "true", "--interval", "100000")
    data = service.data_dir
    first = await until_completed(data, set())  # the start-up run
    (service.triggers_dir / "run-now").touch()
    second = await until_completed(data, {first})
    service.stop(9)  # SIGKILL: no clean stop, no folding into the file
    journal = (data / JOURNAL_FILE_NAME).read_bytes()
    assert journal, "the last saves are in the journal"
    in_file = json.loads((data / STATE_FILE_NAME).read_text())["jobs"]["snapshot"]["lastRun"] or {}
    assert in_file.get("runId") != second, "the file alone does not know the last run"

    offline = subprocess.run(
        [PYTHON, "-m", "orchestrator", "status", "--json", "--url", service.url, "--data-dir", os.fspath(data)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        cwd=tmp_path,
    )
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["lastRun"]["runId"] == second, "status reads the journal too"

    again = service_factory("--command", "true", "--interval", "100000")
    assert again.get_json("/api/snapshot/status")["lastRun"]["runId"] == second
    assert again.stop() == 0
    assert (data / JOURNAL_FILE_NAME).read_bytes() == b"", "a clean stop folds the journal into the file"
    assert json.loads((data / STATE_FILE_NAME).read_text())["jobs"]["snapshot"]["lastRun"]["runId"] == second
