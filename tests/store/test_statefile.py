"""The state file on disk: every job's state in one version-2 document, and a document of the previous version
(one job's state) read as the default job's."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import Pause, RunRecord, State
from orchestrator.store.statefile import STATE_FILE_NAME, StateFile, jobs_in, read_state_file
from tests.fakes import T0


def a_run(job: str = "snapshot") -> RunRecord:
    return RunRecord(
        run_id="20260120T100000Z-abcdef",
        triggers=(Trigger(Source.HTTP, T0, "by hand"),),
        started_at=T0,
        status=RunStatus.COMPLETED,
        finished_at=T0 + timedelta(seconds=5),
        exit_code=0,
        job=job,
    )


def version_1(state: State) -> dict[str, Any]:
    """``state`` as the previous version wrote it: the one job's state at the top, its runs naming no job."""
    document = {"version": 1, **state.to_json()}
    for key in ("lastRun", "current"):
        if document[key] is not None:
            del document[key]["job"]
    return document


OLD = State(last_run=a_run(), paused=Pause(T0, "maintenance")).with_trigger(Trigger(Source.FILE, T0, "run-now"))


def on_disk(path: Path) -> dict[str, Any]:
    """The state file's document with its journal's records replayed (as every reader sees it)."""
    document: dict[str, Any] = json.loads(path.read_text())
    return {"version": document["version"], "jobs": read_state_file(path, "snapshot")[0]}


def test_every_jobs_state_is_in_one_version_2_document(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    assert states.job("snapshot").save(State(last_run=a_run()))
    assert states.job("report").save(State(paused=Pause(T0, "quiet")))
    assert on_disk(path) == {
        "version": 2,
        "jobs": {
            "snapshot": State(last_run=a_run()).to_json(),
            "report": State(paused=Pause(T0, "quiet")).to_json(),
        },
    }
    assert on_disk(path)["jobs"]["snapshot"]["lastRun"]["job"] == "snapshot"


@pytest.mark.parametrize("default_job", ["snapshot", "nightly"])
def test_a_version_1_document_is_the_default_jobs_state(tmp_path: Path, default_job: str) -> None:
    path = tmp_path / STATE_FILE_NAME
    path.write_text(json.dumps(version_1(OLD)))
    states = StateFile(path, default_job=default_job)
    loaded = states.job(default_job).load()
    assert loaded.paused == Pause(T0, "maintenance")
    assert loaded.pending == OLD.pending
    assert loaded.last_run == a_run(default_job), "its runs are the default job's"
    assert states.job("report").load() == State()
    assert states.jobs() == {default_job}
    assert states.job("report").save(State(last_run=a_run("report")))
    written = on_disk(path)
    assert written["version"] == 2 and set(written["jobs"]) == {default_job, "report"}
    assert StateFile(path, default_job="other").job(default_job).load() == loaded, "written back as version 2"


def test_the_runs_of_a_version_1_document_that_name_their_job_are_the_default_jobs(tmp_path: Path) -> None:
    """The last versions with one job named its runs ``snapshot``: the default job's all the same (a run in flight
    is closed as its own, and the state of a job holds no other job's runs)."""
    current = RunRecord(
        run_id="20260120T110000Z-123456", triggers=(Trigger(Source.FILE, T0, "run-now"),), started_at=T0
    )
    path = tmp_path / STATE_FILE_NAME
    path.write_text(json.dumps({"version": 1, **State(last_run=a_run(), current=current).to_json()}))
    assert json.loads(path.read_text())["current"]["job"] == "snapshot"
    loaded = StateFile(path, default_job="nightly").job("nightly").load()
    assert loaded == State(last_run=a_run("nightly"), current=replace(current, job="nightly"))
    assert jobs_in(json.loads(path.read_text()), "nightly") == {"nightly": {"version": 1, **loaded.to_json()}}


def test_a_job_whose_state_is_not_an_object_starts_afresh_and_the_others_keep_theirs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / STATE_FILE_NAME
    path.write_text(json.dumps({"version": 2, "jobs": {"snapshot": State(last_run=a_run()).to_json(), "report": 7}}))
    with caplog.at_level(logging.WARNING):
        assert StateFile(path).job("report").load() == State()
    assert "the state of ['report'] is damaged" in caplog.text
    assert StateFile(path).job("snapshot").load() == State(last_run=a_run())


def test_a_document_whose_jobs_is_not_an_object_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    path.write_text('{"version": 2, "jobs": []}')
    assert StateFile(path).job("snapshot").load() == State()
    assert (tmp_path / f"{STATE_FILE_NAME}.corrupt").read_text() == '{"version": 2, "jobs": []}'


def test_a_save_never_writes_over_a_file_it_could_not_read(tmp_path: Path) -> None:
    """Other jobs' states may be in it; a load (a start) sets it aside."""
    path = tmp_path / STATE_FILE_NAME
    path.write_text('{"version": 2, "jobs": {"report": ')
    store = StateFile(path).job("snapshot")
    assert not store.save(State(last_run=a_run()))
    assert "not JSON" in store.last_error
    assert path.read_text() == '{"version": 2, "jobs": {"report": '
    assert store.load() == State()
    assert store.save(State(last_run=a_run()))


def test_a_load_reads_the_file_again_for_its_job_only(tmp_path: Path) -> None:
    """As a restart would, for the job loaded; another job's state held in memory is as new as the file's."""
    path = tmp_path / STATE_FILE_NAME
    states = StateFile(path)
    assert states.job("report").save(State(last_run=a_run("report")))
    elsewhere = StateFile(path)
    assert elsewhere.job("snapshot").save(State(paused=Pause(T0, "by hand")))
    assert states.job("snapshot").load() == State(paused=Pause(T0, "by hand"))
    assert states.job("snapshot").save(State())
    assert StateFile(path).job("report").load() == State(last_run=a_run("report"))


def test_jobs_in_reads_both_versions() -> None:
    assert jobs_in(version_1(OLD), "snapshot") == {"snapshot": {"version": 1, **OLD.to_json()}}
    nightly = replace(OLD, last_run=a_run("nightly"))
    assert jobs_in(version_1(OLD), "nightly") == {"nightly": {"version": 1, **nightly.to_json()}}, "its runs too"
    assert jobs_in({"version": 2, "jobs": {"a": {}, "b": None}}, "snapshot") == {"a": {}}
    assert jobs_in({"version": 2, "jobs": "junk"}, "snapshot") is None
    assert jobs_in({}, "snapshot") == {}, "an empty document holds no job's state"
