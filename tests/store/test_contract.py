"""One contract for every store implementation (see conftest.py for the back ends it runs over): what the
service relies on, checked on real files (or a real database), no mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import DEFAULT_JOB, Pause, RunRecord, State
from orchestrator.core.steps import Step
from orchestrator.store import PrunedRun, StoreUnavailable
from orchestrator.store.lock import AlreadyLocked
from tests.fakes import T0
from tests.store.conftest import Backend


def run(
    n: int, status: RunStatus = RunStatus.COMPLETED, *, minutes: float | None = None, job: str = DEFAULT_JOB
) -> RunRecord:
    started = T0 + timedelta(minutes=n if minutes is None else minutes)
    return RunRecord(
        job=job,
        run_id=f"20260120T1000{n:02d}Z-{n:06x}",
        triggers=(Trigger(Source.HTTP, started - timedelta(seconds=30), f"reason {n}"),),
        started_at=started,
        status=status,
        finished_at=None if status is RunStatus.RUNNING else started + timedelta(seconds=60 + n),
        exit_code=None if status is RunStatus.RUNNING else 0,
        step="done" if status is not RunStatus.RUNNING else "",
    )


# ------------------------------------------------------------------------------------------------ history
def test_a_record_round_trips_with_its_log_path(backend: Backend) -> None:
    history = backend.stores.history
    started = run(1, RunStatus.RUNNING)
    history.record(started, log_path="logs/a.log")
    history.record(run(1))  # the end: the log path given at the start stays
    stored = history.get(started.run_id)
    assert stored is not None
    assert (stored.run_id, stored.status, stored.log_path) == (started.run_id, RunStatus.COMPLETED, "logs/a.log")
    assert stored.record() == run(1)
    assert dict(stored.document) == run(1).to_json(), "the document is the record as written"
    assert (stored.finished_at, stored.duration_seconds) == (run(1).finished_at, 61.0)
    assert history.get("no-such-run") is None
    assert backend.reopen().history.get(started.run_id) == stored, "kept across a reopen"


def test_pages_are_newest_first_and_follow_their_cursor(backend: Backend) -> None:
    history = backend.stores.history
    for n in (3, 1, 5, 2, 4):
        history.record(run(n))
    ids = [run(n).run_id for n in (5, 4, 3, 2, 1)]
    first = history.page(limit=2)
    second = history.page(limit=2, cursor=first.next_cursor)
    last = history.page(limit=2, cursor=second.next_cursor)
    assert [r.run_id for p in (first, second, last) for r in p.runs] == ids
    assert last.next_cursor is None
    assert [r.run_id for r in history.page().runs] == ids
    with pytest.raises(KeyError):
        history.page(cursor="no-such-run")
    for limit in (0, 501):
        with pytest.raises(ValueError):
            history.page(limit=limit)
    assert history.count() == 5
    assert history.run_ids() == frozenset(ids)


def test_the_newest_runs_of_a_status_among_the_latest(backend: Backend) -> None:
    history = backend.stores.history
    for n in range(1, 7):
        history.record(run(n, RunStatus.ERROR if n % 2 else RunStatus.COMPLETED))
    completed = history.newest(2, status=RunStatus.COMPLETED, within=10)
    assert [r.run_id for r in completed] == [run(6).run_id, run(4).run_id]
    assert [r.run_id for r in history.newest(5, status=RunStatus.COMPLETED, within=3)] == [
        run(6).run_id,
        run(4).run_id,
    ], "only among the newest three"
    assert history.newest(1, status=RunStatus.CANCELLED, within=10) == ()


def test_unfinished_runs_are_those_still_running(backend: Backend) -> None:
    history = backend.stores.history
    history.record(run(2, RunStatus.RUNNING))
    history.record(run(1, RunStatus.RUNNING))
    history.record(run(3))
    assert [r.run_id for r in history.unfinished()] == [run(1).run_id, run(2).run_id], "oldest first"
    history.record(run(1))
    assert [r.run_id for r in history.unfinished()] == [run(2).run_id]


def test_prune_keeps_the_newest_and_drops_the_old(backend: Backend) -> None:
    history = backend.stores.history
    for n in range(1, 11):
        history.record(run(n), log_path=f"logs/{n}.log")
    gone = history.prune(keep=6)
    assert sorted(gone, key=lambda r: r.run_id) == [PrunedRun(run(n).run_id, f"logs/{n}.log") for n in range(1, 5)]
    gone = history.prune(keep=6, older_than=T0 + timedelta(minutes=7))
    assert sorted(r.run_id for r in gone) == [run(5).run_id, run(6).run_id]
    assert [r.run_id for r in history.page().runs] == [run(n).run_id for n in (10, 9, 8, 7)]
    assert history.prune(keep=10) == []
    with pytest.raises(ValueError):
        history.prune(keep=-1)


# ------------------------------------------------------------------------------------------ history by job
def test_a_run_keeps_its_job(backend: Backend) -> None:
    history = backend.stores.history
    history.record(run(1, job="report"), log_path="logs/1.log")
    stored = history.get(run(1).run_id)
    assert stored is not None
    assert (stored.job, stored.document["job"]) == ("report", "report")
    assert stored.record() == run(1, job="report")
    assert backend.reopen().history.get(run(1).run_id) == stored


def record_jobs(backend: Backend) -> dict[int, str]:
    """Runs 1 to 9 of three jobs, interleaved (report: 1, 4, 7; nightly: 2, 5, 8; snapshot: 3, 6, 9), 4 and 7
    failed; ``{n: job}``."""
    jobs = {n: ("snapshot", "report", "nightly")[n % 3] for n in range(1, 10)}
    for n, job in jobs.items():
        backend.stores.history.record(run(n, RunStatus.ERROR if n in (4, 7) else RunStatus.COMPLETED, job=job))
    return jobs


def test_the_listing_reads_take_a_job(backend: Backend) -> None:
    history = backend.stores.history
    jobs = record_jobs(backend)
    of = {job: [run(n).run_id for n in sorted(jobs, reverse=True) if jobs[n] == job] for job in set(jobs.values())}
    assert [r.run_id for r in history.page(job="report").runs] == of["report"], "newest first"
    first = history.page(limit=2, job="nightly")
    assert ([r.run_id for r in first.runs], first.next_cursor) == (of["nightly"][:2], of["nightly"][1])
    rest = history.page(limit=2, cursor=first.next_cursor, job="nightly")
    assert ([r.run_id for r in rest.runs], rest.next_cursor) == (of["nightly"][2:], None)
    assert {r.job for r in history.page(job="snapshot").runs} == {"snapshot"}
    assert len(history.page().runs) == 9, "every job's without a job"
    assert history.page(job="no-such-job").runs == ()
    assert (history.count(), history.count(job="report"), history.count(job="no-such-job")) == (9, 3, 0)
    completed = history.newest(5, status=RunStatus.COMPLETED, within=2, job="nightly")
    assert [r.run_id for r in completed] == [run(8).run_id, run(5).run_id]
    assert [r.run_id for r in history.newest(5, status=RunStatus.ERROR, within=9, job="report")] == [
        run(7).run_id,
        run(4).run_id,
    ]
    assert history.newest(5, status=RunStatus.ERROR, within=9, job="snapshot") == ()
    assert [r.run_id for r, _ in history.completed_steps(5, job="snapshot")] == [run(n).run_id for n in (9, 6, 3)]
    assert [r.run_id for r, _ in history.completed_steps(5, job="report")] == [run(1).run_id], "7 and 4 failed"


def test_unfinished_runs_by_job(backend: Backend) -> None:
    history = backend.stores.history
    history.record(run(1, RunStatus.RUNNING, job="report"))
    history.record(run(2, RunStatus.RUNNING))
    assert [r.run_id for r in history.unfinished(job="report")] == [run(1).run_id]
    assert [(r.run_id, r.job) for r in history.unfinished()] == [(run(1).run_id, "report"), (run(2).run_id, "snapshot")]


def test_prune_keeps_the_newest_runs_of_each_job(backend: Backend) -> None:
    history = backend.stores.history
    for n in range(1, 13):
        history.record(run(n, job="every-minute" if n > 3 else "nightly"), log_path=f"logs/{n}.log")
    gone = history.prune(keep=2)
    assert sorted(gone, key=lambda r: r.run_id) == [
        PrunedRun(run(n).run_id, f"logs/{n}.log") for n in (1, *range(4, 11))
    ]
    assert [r.run_id for r in history.page().runs] == [run(n).run_id for n in (12, 11, 3, 2)], "each job keeps 2"
    gone = history.prune(keep=2, older_than=T0 + timedelta(minutes=3))
    assert [r.run_id for r in gone] == [run(2).run_id], "and none older than the cut-off"
    assert history.count(job="nightly") == 1


def steps_of(n: int) -> tuple[Step, ...]:
    begin = run(n).started_at
    return tuple(
        Step(
            f"step {k}", begin + timedelta(seconds=10 * k), begin + timedelta(seconds=10 * k + 10), 10 * k, 10 * k + 10
        )
        for k in range(n % 4 + 1)
    )


def test_a_runs_steps_are_kept_with_it_and_removed_with_it(backend: Backend) -> None:
    history = backend.stores.history
    history.record(run(1, RunStatus.RUNNING), log_path="logs/1.log")
    assert history.steps(run(1).run_id) == (), "a run recorded without steps has none"
    history.record(run(1), steps=steps_of(1))
    history.record(run(1))  # a later record without steps leaves them
    assert history.steps(run(1).run_id) == steps_of(1)
    assert history.steps("no-such-run") is None
    for n in (2, 3, 4):
        history.record(run(n, RunStatus.ERROR if n == 3 else RunStatus.COMPLETED), steps=steps_of(n))
    assert [(r.run_id, steps) for r, steps in history.completed_steps(5)] == [
        (run(n).run_id, steps_of(n)) for n in (4, 2, 1)
    ], "completed runs only, newest first"
    assert [r.run_id for r, _ in history.completed_steps(1)] == [run(4).run_id]
    assert backend.reopen().history.steps(run(2).run_id) == steps_of(2), "kept across a reopen"
    history.prune(keep=1)
    assert history.steps(run(1).run_id) is None
    assert [r.run_id for r, _ in history.completed_steps(5)] == [run(4).run_id]


def test_a_broken_history_raises_store_unavailable_and_owes_what_it_could_not_write(backend: Backend) -> None:
    history = backend.stores.history
    history.record(run(1, RunStatus.RUNNING), log_path="logs/1.log")
    backend.break_history()
    with pytest.raises(StoreUnavailable) as raised:
        history.record(run(1))
    assert raised.value.__cause__ is not None, "chained from the back end's own error"
    assert history.owed == 1
    with pytest.raises(StoreUnavailable):
        history.write_owed()
    for read in (
        lambda: history.get(run(1).run_id),
        history.page,
        history.count,
        history.unfinished,
        history.run_ids,
        lambda: history.newest(1, status=RunStatus.COMPLETED, within=5),
        lambda: history.prune(keep=1),
    ):
        with pytest.raises(StoreUnavailable):
            read()
    assert history.owed == 1, "still owed"
    backend.mend_history()
    assert history.write_owed() == 1
    assert history.owed == 0
    stored = history.get(run(1).run_id)
    assert stored is not None and stored.status is RunStatus.COMPLETED


# -------------------------------------------------------------------------------------------------- state
def test_the_state_round_trips(backend: Backend) -> None:
    state = State(last_run=run(1), paused=Pause(T0, "maintenance")).with_trigger(Trigger(Source.FILE, T0, "x"))
    store = backend.stores.states.job(DEFAULT_JOB)
    assert store.load() == State(), "nothing saved yet: a fresh state"
    assert store.save(state)
    assert backend.reopen().states.job(DEFAULT_JOB).load() == state


def test_each_jobs_state_is_its_own_and_a_save_keeps_the_others(backend: Backend) -> None:
    snapshot, report = backend.stores.states.job("snapshot"), backend.stores.states.job("report")
    assert backend.stores.states.job("report") is report, "one view per job"
    assert snapshot.save(State(last_run=run(1)))
    assert report.save(State(paused=Pause(T0, "quiet")).with_trigger(Trigger(Source.TIMER, T0, "scheduled")))
    assert snapshot.save(State(last_run=run(2)))
    assert report.load().pending_count == 1
    states = backend.reopen().states
    assert states.jobs() == {"snapshot", "report"}
    assert states.job("snapshot").load() == State(last_run=run(2))
    assert states.job("report").load() == State(paused=Pause(T0, "quiet")).with_trigger(
        Trigger(Source.TIMER, T0, "scheduled")
    )
    assert states.job("nightly").load() == State(), "a job never saved has a fresh state"


def test_a_job_no_longer_asked_for_keeps_its_state(backend: Backend) -> None:
    removed = State().with_trigger(Trigger(Source.HTTP, T0, "still owed"))
    assert backend.stores.states.job("report").save(removed)
    later = backend.reopen().states  # a service whose jobs no longer include "report"
    assert later.job("snapshot").load() == State()
    assert later.job("snapshot").save(State(last_run=run(3)))
    again = backend.reopen().states
    assert again.job("report").load() == removed, "its pending trigger is still there when it comes back"
    assert again.jobs() == {"snapshot", "report"}


def test_a_damaged_state_loads_as_a_fresh_one(backend: Backend) -> None:
    backend.damage_state(b'{"version": 2, "jobs": {"snapshot": ')
    store = backend.stores.states.job(DEFAULT_JOB)
    assert store.load() == State()
    assert backend.stores.states.job("report").load() == State()
    assert store.save(State(last_run=run(2)))
    assert store.load().last_run == run(2)


def test_a_state_that_cannot_be_saved_says_why_and_saves_once_it_can(backend: Backend) -> None:
    store = backend.stores.states.job(DEFAULT_JOB)
    backend.break_state()
    assert not store.save(State(last_run=run(1)))
    assert store.last_error
    assert store.load() == State(), "set aside: a fresh state"
    assert store.save(State(last_run=run(1)))
    assert store.last_error == ""
    assert store.load().last_run == run(1)


def test_a_save_that_failed_is_written_by_the_next_save_of_any_job(backend: Backend) -> None:
    snapshot, report = backend.stores.states.job("snapshot"), backend.stores.states.job("report")
    assert snapshot.save(State(last_run=run(1)))
    backend.break_state()
    assert not report.save(State(last_run=replace(run(2), job="report")))
    assert report.last_error and snapshot.last_error == "", "said to the job whose save it was"
    backend.mend_state()
    assert snapshot.save(State(last_run=run(3)))
    states = backend.reopen().states
    assert states.job("report").load() == State(last_run=replace(run(2), job="report"))
    assert states.job("snapshot").load() == State(last_run=run(3))


# --------------------------------------------------------------------------------------------------- lock
def test_the_lock_is_held_by_one_at_a_time(backend: Backend) -> None:
    first, second = backend.stores.lock, backend.reopen().lock
    first.acquire({"pid": 1, "url": "http://a"})
    try:
        with pytest.raises(AlreadyLocked, match="pid 1, http://a"):
            second.acquire({"pid": 2})
    finally:
        first.release()
    second.acquire({"pid": 2})
    second.release()


# --------------------------------------------------------------------------------------------------- logs
def test_log_files_append_read_list_and_remove(backend: Backend) -> None:
    logs = backend.stores.log_files
    run_id = run(1).run_id
    path = logs.path_of(logs.relative_path(run_id))
    assert path is not None
    logs.append(run_id, b"line one\n", first=True)
    logs.append(run_id, b"line two\n", first=False)
    assert logs.size(path) == 18
    assert logs.read(path, 5, 18) == b"one\nline two\n"
    assert logs.names() == [f"{run_id}.log"]
    logs.append(run_id, b"anew\n", first=True)
    assert logs.read(path, 0, 100) == b"anew\n", "first: the log starts anew"
    logs.remove([f"{run_id}.log", "never-there.log"])
    assert logs.names() == []
    with pytest.raises(OSError):
        logs.size(path)
    assert logs.path_of("../orchestrator_state.json") is None
    assert logs.path_of(None) is None
