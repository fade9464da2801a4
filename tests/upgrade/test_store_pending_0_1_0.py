"""The stores on a data folder written just before there were several jobs, with triggers pending (see README.md
here), opened with the default job a jobs file names: its pending triggers, its pause, its last run and its
runs are the default job's, whatever it is named, and stay so once written in the new form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.core.events import parse_iso
from orchestrator.core.records import Pause, State
from orchestrator.jobsfile import load_jobs_file
from orchestrator.store import open_stores
from orchestrator.store.statefile import STATE_FILE_NAME
from tests.upgrade.test_data_pending_0_1_0 import CANCELLED_RUN, OLD_RUNS, PENDING, WRITTEN_BEFORE_JOBS

PAUSED_AT = parse_iso("2026-12-07T14:35:56.413Z")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(WRITTEN_BEFORE_JOBS, data)
    return data


def default_job_of(tmp_path: Path, name: str) -> str:
    """The default job of a jobs file whose default job is ``name``, with a follower and a job of its own."""
    path = tmp_path / "jobs.toml"
    path.write_text(
        f'default-job = "{name}"\n'
        f'[jobs.report]\ncommand = "true"\nafter = ["{name}"]\n'
        f'[jobs.{name}]\ncommand = "true"\ninterval = 600\n'
        '[jobs.adhoc]\ncommand = "true"\n'
    )
    return load_jobs_file(path).default_job


@pytest.mark.parametrize("name", ["snapshot", "nightly"])
def test_the_pending_triggers_pause_and_runs_are_the_default_jobs(data: Path, tmp_path: Path, name: str) -> None:
    default_job = default_job_of(tmp_path, name)
    assert default_job == name, "said by the file, not its first table"
    stores = open_stores(data, default_job=default_job)
    state = stores.states.job(default_job).load()
    assert [(t.source, t.reason) for t in state.pending] == PENDING
    assert state.pending_count == 2
    assert PAUSED_AT is not None and state.paused == Pause(PAUSED_AT, "maintenance")
    assert state.current is None, "the run in flight was ended by the stop, and recorded"
    assert state.last_run is not None
    last = state.last_run
    assert (last.run_id, last.status.value, last.error, last.job) == (*CANCELLED_RUN, default_job)
    assert stores.states.jobs() == {default_job}
    for other in ("report", "adhoc"):
        assert stores.states.job(other).load() == State(), f"{other} starts afresh"

    history = stores.history
    runs = history.page(job=default_job).runs
    assert [(r.run_id, r.document["status"], r.document["trigger"], r.document["reason"]) for r in runs] == OLD_RUNS
    assert {(r.job, r.document["job"]) for r in runs} == {(default_job, default_job)}, "the row and its record agree"
    assert {run.job for r in runs if (run := r.record()) is not None} == {default_job}
    assert (history.count(), history.count(job=default_job), history.count(job="report")) == (3, 3, 0)
    assert history.unfinished() == []
    assert [step.name for step in history.steps(CANCELLED_RUN[0]) or ()][-1] == "Waiting for the gate file"
    for run in runs:
        log = stores.log_files.path_of(run.log_path)
        assert log is not None and log.read_text() == (WRITTEN_BEFORE_JOBS / "logs" / f"{run.run_id}.log").read_text()


@pytest.mark.parametrize("name", ["snapshot", "nightly"])
def test_once_saved_the_pending_triggers_are_the_default_jobs_in_version_2(
    data: Path, tmp_path: Path, name: str
) -> None:
    default_job = default_job_of(tmp_path, name)
    stores = open_stores(data, default_job=default_job)
    state = stores.states.job(default_job).load()
    assert stores.states.job("report").save(State()), "a save of any job writes every job's"
    document = json.loads((data / STATE_FILE_NAME).read_text())
    assert (document["version"], list(document["jobs"])) == (2, [default_job, "report"])
    saved = document["jobs"][default_job]
    assert [(t["source"], t["reason"]) for t in saved["pending"]] == [(s.value, r) for s, r in PENDING]
    assert (saved["pendingCount"], saved["paused"]["reason"]) == (2, "maintenance")
    assert (saved["lastRun"]["runId"], saved["lastRun"]["job"]) == (CANCELLED_RUN[0], default_job)
    assert document["jobs"]["report"]["pendingCount"] == 0

    again = open_stores(data, default_job="report")
    assert again.states.job(default_job).load() == state, "kept as the job it was read as"
    assert again.states.job("report").load() == State()
    assert [r.run_id for r in again.history.page(job=default_job).runs] == [run[0] for run in OLD_RUNS]
