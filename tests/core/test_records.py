"""The records' JSON: a run names its job, and a record written before there were several jobs is the default
job's (or the job whose state holds it)."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import DEFAULT_JOB, RunRecord, State
from tests.fakes import T0


def a_run(job: str = DEFAULT_JOB) -> RunRecord:
    return RunRecord(
        run_id="20260120T100000Z-abcdef",
        triggers=(Trigger(Source.HTTP, T0, "by hand"),),
        started_at=T0,
        status=RunStatus.COMPLETED,
        finished_at=T0 + timedelta(seconds=5),
        exit_code=0,
        job=job,
    )


def test_a_run_names_its_job_and_round_trips() -> None:
    run = a_run("report")
    assert run.to_json()["job"] == "report"
    assert run.to_brief_json()["job"] == "report"
    assert RunRecord.from_json(run.to_json()) == run
    assert RunRecord.from_json(run.to_json(), default_job="nightly") == run, "a named job is kept"


def test_a_run_that_names_no_job_is_the_default_jobs() -> None:
    old = a_run().to_json()
    del old["job"]
    assert RunRecord.from_json(old) == a_run(DEFAULT_JOB)
    assert RunRecord.from_json(old, default_job="nightly") == a_run("nightly")
    for junk in (None, "", 7, ["report"]):
        assert RunRecord.from_json({**old, "job": junk}, default_job="nightly") == a_run("nightly"), junk


def test_a_states_runs_that_name_no_job_are_its_jobs() -> None:
    old = State(last_run=a_run(), current=a_run()).to_json()
    for key in ("lastRun", "current"):
        del old[key]["job"]
    state = State.from_json(old, job="report")
    assert state.last_run == a_run("report")
    assert state.current == a_run("report")
    assert State.from_json(old) == State(last_run=a_run(), current=a_run()), "the default job's by default"


def test_a_batch_of_triggers_is_the_same_state_as_each_added_in_turn() -> None:
    for before, count in [(0, 0), (0, 3), (97, 5), (100, 4), (0, 250)]:
        state = State()
        for n in range(before):
            state = state.with_trigger(Trigger(Source.HTTP, T0, f"early {n}"))
        batch = [Trigger(Source.FILE, T0, f"file {n}") for n in range(count)]
        one_by_one = state
        for trigger in batch:
            one_by_one = one_by_one.with_trigger(trigger)
        assert state.with_triggers(batch) == one_by_one, (before, count)
