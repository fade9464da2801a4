"""The run history store: a real SQLite file, no service around it yet."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.core.events import RunStatus, Source, Trigger, iso
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import Step
from orchestrator.store import PrunedRun, StoreUnavailable
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory, read_recent
from tests.fakes import T0, ScriptedJob, Services, ended
from tests.support import next_status, sse_stream


def run(n: int, *, minutes_after: float | None = None, status: RunStatus = RunStatus.COMPLETED) -> RunRecord:
    started = T0 + timedelta(minutes=n if minutes_after is None else minutes_after)
    # Asked for twice while the run before was going on: first over HTTP, then by a file.
    triggers = (
        Trigger(Source.HTTP, started - timedelta(minutes=3), f"reason {n}"),
        Trigger(Source.FILE, started - timedelta(minutes=1), "another"),
    )
    return RunRecord(
        run_id=f"run-{n:05d}",
        triggers=triggers,
        started_at=started,
        status=status,
        finished_at=started + timedelta(seconds=90),
        exit_code=0,
        step="Snapshot written",
        trigger_count=7,
    )


@pytest.fixture
def history(tmp_path: Path) -> SqliteHistory:
    return SqliteHistory(tmp_path / "runs.sqlite3")


def document(history: SqliteHistory, run_id: str) -> Mapping[str, Any]:
    stored = history.get(run_id)
    assert stored is not None, run_id
    return stored.document


def log_path(history: SqliteHistory, run_id: str) -> str | None:
    stored = history.get(run_id)
    assert stored is not None, run_id
    return stored.log_path


def test_a_run_is_recorded_at_start_and_updated_at_its_end(history: SqliteHistory) -> None:
    started = replace(run(1), status=RunStatus.RUNNING, finished_at=None, exit_code=None, step="")
    history.record(started, log_path="logs/run-00001.log")
    assert document(history, "run-00001")["status"] == "running"
    history.record(run(1))
    record = document(history, "run-00001")
    assert (record["status"], record["durationSeconds"], record["step"]) == ("completed", 90.0, "Snapshot written")
    assert (record["triggerCount"], [t["source"] for t in record["triggers"]]) == (7, ["http", "file"])
    assert (record["queuedAt"], record["startedAt"]) == (iso(T0 - timedelta(minutes=2)), iso(T0 + timedelta(minutes=1)))
    assert log_path(history, "run-00001") == "logs/run-00001.log", "the end keeps the log path given at start"
    assert history.count() == 1
    assert history.get("no-such-run") is None


def test_pages_are_newest_first_and_follow_their_cursor(history: SqliteHistory) -> None:
    for n in (3, 1, 5, 2, 4):
        history.record(run(n))
    first = history.page(limit=2)
    assert [r.run_id for r in first.runs] == ["run-00005", "run-00004"]
    second = history.page(limit=2, cursor=first.next_cursor)
    assert [r.run_id for r in second.runs] == ["run-00003", "run-00002"]
    last = history.page(limit=2, cursor=second.next_cursor)
    assert ([r.run_id for r in last.runs], last.next_cursor) == (["run-00001"], None)
    with pytest.raises(KeyError):
        history.page(cursor="no-such-run")
    with pytest.raises(ValueError, match="limit"):
        history.page(limit=0)


def test_runs_started_in_the_same_millisecond_keep_a_stable_order(history: SqliteHistory) -> None:
    for n in range(6):
        history.record(run(n, minutes_after=0))
    seen = []
    page = history.page(limit=4)
    seen += [r.run_id for r in page.runs]
    page = history.page(limit=4, cursor=page.next_cursor)
    seen += [r.run_id for r in page.runs]
    assert seen == [f"run-{n:05d}" for n in range(5, -1, -1)], "the later recorded first"


def test_pruning_by_count_and_age_returns_what_went(history: SqliteHistory) -> None:
    for n in range(1, 11):
        history.record(run(n), log_path=f"logs/{n}.log")
    gone = history.prune(keep=5)
    assert sorted(r.run_id for r in gone) == [f"run-{n:05d}" for n in range(1, 6)]
    assert PrunedRun("run-00001", "logs/1.log") in gone
    gone = history.prune(keep=5, older_than=T0 + timedelta(minutes=8))
    assert sorted(r.run_id for r in gone) == ["run-00006", "run-00007"]
    assert [r.run_id for r in history.page().runs] == ["run-00010", "run-00009", "run-00008"]


def test_the_history_survives_a_reopen(tmp_path: Path) -> None:
    SqliteHistory(tmp_path / "runs.sqlite3").record(run(1))
    assert SqliteHistory(tmp_path / "runs.sqlite3").get("run-00001") is not None


@pytest.mark.parametrize("content", [b"not a database at all", b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_file_that_is_not_a_database_is_set_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(content)
    store = SqliteHistory(path)
    store.record(run(1))
    assert store.count() == 1
    assert (tmp_path / "runs.sqlite3.corrupt").read_bytes() == content
    assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 1


def test_no_descriptor_stays_open_between_calls(history: SqliteHistory) -> None:
    """A data folder with a file open for writing cannot be remounted read-only: the store holds none."""
    history.record(run(1))
    history.page()
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone by now
            held.append(os.readlink(f"/proc/self/fd/{fd}"))
    assert not [path for path in held if "runs.sqlite3" in path]


async def test_the_service_records_every_run_and_one_cancelled_by_a_stop(
    tmp_path: Path, job: ScriptedJob, services: Services
) -> None:
    service = await services.start(interval=600)
    first = await job.next_start()
    first.finish(RunStatus.ERROR, exit_code=3, error="exited with code 3")
    await ended(service, first)
    await service.request_run(Source.HTTP, "again")
    second = await job.next_start()
    await service.stop()  # mid-run: recorded as cancelled
    history = SqliteHistory(tmp_path / "data" / HISTORY_FILE_NAME)
    runs = [r.document for r in history.page().runs]
    assert [(r["runId"], r["status"]) for r in runs] == [
        (second.ctx.run_id, "cancelled"),
        (first.ctx.run_id, "error"),
    ]
    assert (runs[1]["exitCode"], runs[1]["error"], runs[0]["reason"]) == (3, "exited with code 3", "again")


@pytest.mark.process
async def test_the_history_over_http(service_factory: Any) -> None:
    service = service_factory("--command", "true", "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        done = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
        ids = [done["lastRun"]["runId"]]
        for n in range(2):
            assert service.post_json("/api/snapshot/trigger", {"reason": f"run {n}"})[0] == 202
            done = await next_status(events, lambda d: not d["running"] and d["lastRun"]["runId"] not in ids)
            ids.append(done["lastRun"]["runId"])

        async def get(path: str) -> tuple[int, Any]:
            async with session.get(service.url + path) as response:
                return response.status, await response.json()

        status, first = await get("/api/snapshot/runs?limit=2")
        assert status == 200
        assert [r["runId"] for r in first["runs"]] == ids[:0:-1], "newest first"
        assert first["runs"][0]["reason"] == "run 1"
        status, rest = await get(f"/api/snapshot/runs?limit=2&cursor={first['nextCursor']}")
        assert (status, [r["runId"] for r in rest["runs"]], rest["nextCursor"]) == (200, ids[:1], None)
        status, one = await get(f"/api/snapshot/runs/{ids[0]}")
        assert (status, one["runId"], one["trigger"], one["status"]) == (200, ids[0], "startup", "completed")

        for path, expected, words in (
            ("/api/snapshot/runs/no-such-run", 404, "No run 'no-such-run'"),
            ("/api/snapshot/runs?cursor=no-such-run", 404, "is no run in the history"),
            ("/api/snapshot/runs?limit=0", 400, "limit must be a whole number from 1 to 500"),
            ("/api/snapshot/runs?limit=many", 400, "limit must be a whole number"),
        ):
            status, body = await get(path)
            assert (status, body["success"]) == (expected, False), (path, body)
            assert words in body["message"], (path, body)


def test_a_damaged_record_is_a_database_error_for_every_reader(history: SqliteHistory) -> None:
    history.record(run(1))
    with sqlite3.connect(history.path) as db:
        db.execute("UPDATE runs SET record = ? WHERE run_id = ?", ("{not json", "run-00001"))
    db.close()
    with pytest.raises(StoreUnavailable, match="not JSON") as raised:
        history.page()
    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(StoreUnavailable, match="not JSON"):
        history.get("run-00001")
    assert read_recent(history.path, 5) == [], "the CLI's read-only look shows no runs rather than failing"


LOCK_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the whole file: any lock SQLite holds on it conflicts
except OSError:
    sys.exit(1)
sys.exit(0)
"""


@pytest.mark.process
def test_a_history_call_leaves_the_locks_of_another_connection_alone(history: SqliteHistory) -> None:
    """SQLite keeps connections apart with POSIX locks on the database file, which Linux drops for the whole
    process when any descriptor of the file is closed: a call that opened and closed the file stripped the
    locks of every other connection of the service (another thread's, mid-write), and a client that then
    closed thought itself the last one and checkpointed and deleted the write-ahead log under it."""
    history.record(run(1))
    other = sqlite3.connect(history.path)
    try:
        other.execute("BEGIN IMMEDIATE")  # a write under way on another connection
        other.execute("SELECT count(*) FROM runs").fetchone()

        def locked() -> bool:
            probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(history.path)], check=False)
            return probe.returncode == 1

        assert locked(), "the probe must see the other connection's lock to begin with"
        history.count()
        history.get("x")
        assert locked(), "a history call dropped another connection's locks"
    finally:
        other.rollback()
        other.close()


def test_a_record_that_cannot_be_written_is_kept_and_written_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestrator.store.schema as schema_module

    history = SqliteHistory(tmp_path / HISTORY_FILE_NAME)
    history.record(replace(run(1), status=RunStatus.RUNNING, finished_at=None), log_path="logs/run-00001.log")
    real_connect = schema_module.connect

    def out_of_descriptors(path: Path, *, check: bool = False) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(schema_module, "connect", out_of_descriptors)
    with pytest.raises(StoreUnavailable, match="unable to open database file") as raised:
        history.record(run(1))
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert history.owed == 1
    monkeypatch.setattr(schema_module, "connect", real_connect)
    assert document(history, "run-00001")["status"] == "running"

    history.record(run(2))  # the next write takes the kept one along
    assert history.owed == 0
    assert document(history, "run-00001")["status"] == "completed"
    assert log_path(history, "run-00001") == "logs/run-00001.log"
    assert history.get("run-00002") is not None
    assert history.write_owed() == 0


def test_a_history_written_before_runs_had_steps_is_read_and_takes_steps(tmp_path: Path) -> None:
    """The history of a data folder written by 0.1.0 (tests/upgrade): its runs read as before, with no steps,
    and a new run's steps go beside them."""
    old = Path(__file__).parent.parent / "upgrade" / "data-0.1.0" / "runs.sqlite3"
    path = tmp_path / "runs.sqlite3"
    shutil.copyfile(old, path)
    history = SqliteHistory(path)
    runs = history.page().runs
    assert [r.status for r in runs] == [RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.COMPLETED]
    assert [r.document["reason"] for r in runs] == ["by hand", "fail", "scheduled"]
    assert all(history.steps(r.run_id) == () for r in runs)
    newest = runs[0].record()
    assert newest is not None
    later = replace(newest, run_id="20270101T000000Z-abcdef", started_at=newest.started_at + timedelta(days=1))
    step = Step("Fetching", later.started_at, later.started_at + timedelta(seconds=5), 0, 100)
    history.record(later, steps=(step,))
    assert history.steps(later.run_id) == (step,)
    assert [r.run_id for r, _ in history.completed_steps(10)][:2] == [later.run_id, newest.run_id]


def test_the_runs_of_a_history_written_before_there_were_several_jobs_are_the_default_jobs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Made the default job's when the history is opened (said once), and kept with it when another job is
    made the default later, as its state is."""
    old = Path(__file__).parent.parent / "upgrade" / "data-0.1.0" / "runs.sqlite3"
    path = tmp_path / "runs.sqlite3"
    shutil.copyfile(old, path)
    assert {r["job"] for r in read_recent(path, 5, default_job="nightly")} == {"nightly"}, "read-only: as it is"
    with caplog.at_level(logging.INFO):
        history = SqliteHistory(path, default_job="nightly")
    assert "3 run(s) recorded before there were several jobs are runs of the default job, 'nightly'" in caplog.text
    assert (history.count(job="nightly"), history.count(job="snapshot")) == (3, 0)
    runs = history.page(job="nightly").runs
    assert [(r.job, r.document["job"]) for r in runs] == [("nightly", "nightly")] * 3
    assert {run.job for r in runs if (run := r.record()) is not None} == {"nightly"}
    caplog.clear()
    again = SqliteHistory(path, default_job="snapshot")
    assert "several jobs" not in caplog.text, "once"
    assert (again.count(job="nightly"), again.count(job="snapshot")) == (3, 0), "they stay with the job that ran them"
    db = sqlite3.connect(path)
    try:  # a run the previous version recorded in it meanwhile (it knows no job column)
        db.execute(
            "INSERT INTO runs (run_id, started_at, record) VALUES ('r-old', '2027-01-01', '{\"runId\": \"r-old\"}')"
        )
        db.commit()
    finally:
        db.close()
    assert SqliteHistory(path, default_job="snapshot").page(job="snapshot").runs[0].run_id == "r-old"


def test_the_runs_of_the_last_history_with_one_job_are_the_default_jobs_records_included(tmp_path: Path) -> None:
    """Its records name the one job ``snapshot``; its rows are made the default job's: the record read says whose
    the row is, and a run it left in flight is closed as the default job's, not moved to a job ``snapshot``."""
    old = Path(__file__).parent.parent / "upgrade" / "data-pending-0.1.0" / "runs.sqlite3"
    path = tmp_path / "runs.sqlite3"
    shutil.copyfile(old, path)
    db = sqlite3.connect(path)
    try:  # as if that version had been killed during its last run
        db.execute("UPDATE runs SET record = json_set(record, '$.status', 'running') WHERE run_id = ?", (OLDEST,))
        db.commit()
    finally:
        db.close()
    assert {r["job"] for r in read_recent(path, 5)} == {"snapshot"}
    assert {r["job"] for r in read_recent(path, 5, default_job="nightly")} == {"nightly"}, "read-only: as it is"
    history = SqliteHistory(path, default_job="nightly")
    assert {r["job"] for r in read_recent(path, 5, default_job="snapshot")} == {"nightly"}, "the rows say"
    assert {(r.job, r.document["job"]) for r in history.page(job="nightly").runs} == {("nightly", "nightly")}
    stored = history.get(OLDEST)
    assert stored is not None and stored.job == "nightly"
    [interrupted] = history.unfinished(job="nightly")
    assert (interrupted.run_id, interrupted.job) == (OLDEST, "nightly")
    history.record(replace(interrupted, status=RunStatus.ERROR, error="interrupted: service stopped"))
    assert (history.count(job="nightly"), history.count(job="snapshot")) == (3, 0)


OLDEST = "20261207T143546Z-e5fa56"
"""The first run in tests/upgrade/data-pending-0.1.0."""
