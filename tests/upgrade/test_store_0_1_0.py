"""The stores on a data folder written by 0.1.0 (one job, before there were several; see README.md here): its
state and its runs are the default job's, whatever the default job is named, and stay so once written in the
new form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.core.events import parse_iso
from orchestrator.core.records import Pause, State
from orchestrator.store import open_stores
from orchestrator.store.statefile import STATE_FILE_NAME
from tests.upgrade.test_data_0_1_0 import OLD_RUNS, WRITTEN_BY_0_1_0

PAUSED_AT = parse_iso("2026-12-07T12:10:17.297Z")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(WRITTEN_BY_0_1_0, data)
    return data


@pytest.mark.parametrize("default_job", ["snapshot", "nightly"])
def test_the_state_and_the_runs_are_the_default_jobs(data: Path, default_job: str) -> None:
    stores = open_stores(data, default_job=default_job)
    state = stores.states.job(default_job).load()
    assert PAUSED_AT is not None and state.paused == Pause(PAUSED_AT, "maintenance")
    assert state.last_run is not None
    assert (state.last_run.run_id, state.last_run.job) == (OLD_RUNS[0][0], default_job)
    assert (state.current, state.pending, state.leftovers) == (None, (), ())
    assert state.not_before == parse_iso("2026-12-07T12:15:17.209Z"), "the cooldown of its manual run"
    assert stores.states.jobs() == {default_job}
    assert stores.states.job("report").load() == State(), "another job starts afresh"

    history = stores.history
    runs = history.page(job=default_job).runs
    assert [(r.run_id, r.document["status"], r.document["trigger"], r.document["reason"]) for r in runs] == OLD_RUNS
    assert {(r.job, r.document["job"]) for r in runs} == {(default_job, default_job)}
    assert (history.count(), history.count(job=default_job), history.count(job="report")) == (3, 3, 0)
    assert history.unfinished() == []
    for run in runs:
        log = stores.log_files.path_of(run.log_path)
        assert log is not None and log.read_text() == (WRITTEN_BY_0_1_0 / "logs" / f"{run.run_id}.log").read_text()


def test_once_written_in_the_new_form_nothing_is_lost(data: Path) -> None:
    stores = open_stores(data)
    state = stores.states.job("snapshot").load()
    assert stores.states.job("report").save(State())
    document = json.loads((data / STATE_FILE_NAME).read_text())
    assert (document["version"], list(document["jobs"])) == (2, ["snapshot", "report"])
    again = open_stores(data, default_job="report")
    assert again.states.job("snapshot").load() == state, "kept as the job it was read as"
    assert [r.run_id for r in again.history.page(job="snapshot").runs] == [run[0] for run in OLD_RUNS]
    assert again.history.count(job="report") == 0
