"""The history the service runs with when its own cannot be opened: each caller gets what it got when there
was no history at all (writes and estimates go without; the API's reads and pruning are refused)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from orchestrator.core.events import RunStatus
from orchestrator.core.records import RunRecord
from orchestrator.http.app import create_app
from orchestrator.store import HISTORY_FILE_NAME, HistoryNotOpened, NullHistory, StoreUnavailable, open_history
from orchestrator.store.history import SqliteHistory
from tests.fakes import T0, Client, ScriptedJob, Services, ended


def test_a_history_that_cannot_be_opened_is_a_null_one_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone" / HISTORY_FILE_NAME
    history = open_history(path)
    assert isinstance(history, NullHistory)
    assert history.location == str(path)
    said = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in said] == [
        f"cannot open the run history {path}: [Errno 2] No such file or directory: '{path.parent}'; runs go on "
        "without it"
    ]
    (tmp_path / "here").mkdir()
    assert isinstance(open_history(tmp_path / "here" / HISTORY_FILE_NAME), SqliteHistory)


def test_the_null_history_writes_nothing_and_refuses_the_api_reads() -> None:
    history = NullHistory("runs.sqlite3")
    history.record(RunRecord("r1", (), T0))
    assert (history.owed, history.write_owed(), history.unfinished()) == (0, 0, [])
    assert history.newest(5, status=RunStatus.COMPLETED, within=50) == ()
    for read in (
        lambda: history.get("r1"),
        lambda: history.steps("r1"),
        lambda: history.completed_steps(20),
        history.page,
        history.count,
        history.run_ids,
        lambda: history.prune(keep=1),
    ):
        with pytest.raises(HistoryNotOpened) as raised:
            read()
        assert str(raised.value) == "the run history could not be opened; see the service's log"
    assert issubclass(HistoryNotOpened, StoreUnavailable)


async def test_a_service_without_its_history_runs_and_answers_as_before(
    tmp_path: Path,
    job: ScriptedJob,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    caplog: pytest.LogCaptureFixture,
    services: Services,
) -> None:
    data = tmp_path / "data"
    (data / HISTORY_FILE_NAME).mkdir(parents=True)  # not a database: set aside, which fails here
    (data / f"{HISTORY_FILE_NAME}.corrupt" / "in-the-way").mkdir(parents=True)
    (data / "logs").mkdir()
    earlier = data / "logs" / "20260101T000000Z-abcdef.log"
    earlier.write_text("a log of a run the history would name\n")
    service = services.build()
    assert isinstance(service.history, NullHistory)
    said_at_open = next(r.getMessage() for r in caplog.records if "set aside as" in r.getMessage())
    client = await aiohttp_client(create_app(service))
    first = await job.next_start()
    first.report(50, "Halfway")
    running = await client.get(f"/api/snapshot/runs/{first.ctx.run_id}/steps")
    assert running.status == 200, "the running run's steps are in memory"
    assert [step["name"] for step in (await running.json())["steps"]][-1] == "Halfway"
    first.finish()
    await ended(service, first)
    await service.retention.wait()
    unavailable = {"success": False, "message": "the run history could not be opened; see the service's log"}
    for path in (
        "/api/snapshot/runs",
        f"/api/snapshot/runs/{first.ctx.run_id}",
        "/api/snapshot/runs/x/log",
        f"/api/snapshot/runs/{first.ctx.run_id}/steps",
        "/api/snapshot/steps",
    ):
        response = await client.get(path)
        assert (response.status, await response.json()) == (503, unavailable), path
    assert earlier.exists(), "with no records to go by, no log is taken for an orphan"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors[-1].startswith("cannot open the run history"), "said at start, and nothing said since"
    assert errors[:-1] == [said_at_open], errors
