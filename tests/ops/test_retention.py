"""Retention's own failures: an unforeseen error is logged once and the next run tries again (a real SQLite file)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.core.runevents import RunFinished
from orchestrator.ops.retention import Retention
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.runlogs import RunLogs
from tests.fakes import T0


def _record(run_id: str) -> RunRecord:
    return RunRecord(run_id, (Trigger(Source.HTTP, T0),), T0, status=RunStatus.COMPLETED, finished_at=T0)


async def test_an_unforeseen_error_is_logged_once_and_retention_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 2**63 runs to keep: SQLite cannot take the number (OverflowError, no sqlite3.Error). Uncaught, the task would
    # die with "Task exception was never retrieved", every later prune be lost, and the service's stop raise it.
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    logs = RunLogs(tmp_path, FakeClock(T0))
    retention = Retention(history, logs, FakeClock(T0), keep_runs=2**63, keep_days=0)
    run_ids = ["20260120T100000Z-00000a", "20260120T100001Z-00000b", "20260120T100002Z-00000c"]
    for run_id in run_ids:
        history.record(_record(run_id), log_path=None)
    with caplog.at_level(logging.ERROR, logger="orchestrator.ops.retention"):
        for run_id in run_ids[:2]:
            retention.run_finished(RunFinished(_record(run_id)))
            await retention.wait()
            assert retention._task is not None and retention._task.exception() is None
    failures = [r for r in caplog.records if r.name == "orchestrator.ops.retention"]
    assert len(failures) == 1, "said once, not once per run"
    assert "retention failed unexpectedly" in failures[0].getMessage() and failures[0].exc_info is not None

    retention.keep_runs = 1  # whatever caused it passes: the next run's prune works
    retention.run_finished(RunFinished(_record(run_ids[2])))
    await retention.wait()
    assert [run.run_id for run in history.page().runs] == [run_ids[2]]
    await retention.stop()  # raised the OverflowError before


async def test_a_logs_folder_removed_by_hand_is_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The operator removed ``logs/`` (with every log in it): pruning runs whose logs were there is no failure."""
    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    logs = RunLogs(tmp_path, FakeClock(T0))
    retention = Retention(history, logs, FakeClock(T0), keep_runs=1, keep_days=0)
    run_ids = ["20260120T100000Z-00000a", "20260120T100001Z-00000b"]
    for run_id in run_ids:
        history.record(_record(run_id), log_path=logs.relative_path(run_id))
    assert not (tmp_path / "logs").exists()
    with caplog.at_level(logging.WARNING):
        retention.run_finished(RunFinished(_record(run_ids[1])))
        await retention.wait()
    assert [run.run_id for run in history.page().runs] == [run_ids[1]]
    assert [r.getMessage() for r in caplog.records] == []
    await retention.stop()
