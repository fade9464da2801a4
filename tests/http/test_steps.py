"""A run's steps and where the time goes, over real HTTP: the scripted job reports steps as a job's
``PROGRESS`` lines would, and the fake clock makes every duration exact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, iso
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import MAX_STEPS, MORE_STEPS
from orchestrator.service import Orchestrator
from tests.fakes import T0, Client, ScriptedJob, ScriptedRun, ended
from tests.http.test_api import published

pytestmark = pytest.mark.service(interval=600, cooldown=0)

TOKEN = "s3cret-Token+/=xyz"


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


async def steps_of(client: Client, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/snapshot/runs/{run_id}/steps")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def play(run: ScriptedRun, clock: FakeClock, *steps: tuple[str, float]) -> None:
    """After a second of start-up, report each ``(name, seconds)`` step in turn, the clock moving on by its
    seconds, then finish the run."""
    clock.advance(seconds(1))
    for number, (name, took) in enumerate(steps, 1):
        run.report(100 * (number - 1) / len(steps), name)
        clock.advance(seconds(took))
    run.finish()


async def test_the_running_runs_steps_come_from_memory_and_its_end_from_the_history(
    client: Client, service: Orchestrator, job: ScriptedJob, clock: FakeClock
) -> None:
    run = await job.next_start()
    clock.advance(seconds(2))  # the job's start-up, shown as the service's own first step
    run.report(10, "Connecting to GitHub")
    clock.advance(seconds(3))
    run.report(20, "Fetching GitHub PRs", detail="repo 1/15: octo/api", done=1, total=15)
    clock.advance(seconds(60))
    run.report(45, None, detail="repo 5/15: octo/web", done=5)
    running = await steps_of(client, run.ctx.run_id)
    assert running == {
        "runId": run.ctx.run_id,
        "status": "running",
        "steps": [
            {
                "name": "Starting...",
                "startedAt": iso(T0),
                "endedAt": iso(T0 + seconds(2)),
                "durationSeconds": 2.0,
                "percentStart": 0,
                "percentEnd": 0,
                "detail": None,
                "done": None,
                "total": None,
            },
            {
                "name": "Connecting to GitHub",
                "startedAt": iso(T0 + seconds(2)),
                "endedAt": iso(T0 + seconds(5)),
                "durationSeconds": 3.0,
                "percentStart": 10,
                "percentEnd": 10,
                "detail": None,
                "done": None,
                "total": None,
            },
            {
                "name": "Fetching GitHub PRs",
                "startedAt": iso(T0 + seconds(5)),
                "endedAt": None,
                "durationSeconds": None,
                "percentStart": 20,
                "percentEnd": 45,
                "detail": "repo 5/15: octo/web",
                "done": 5,
                "total": 15,
            },
        ],
        "truncated": False,
    }
    # The status shows the progress file once the service has written it and read it back.
    await published(service, lambda doc: doc["progress"]["detail"] == "repo 5/15: octo/web")
    status = await (await client.get("/api/snapshot/status")).json()
    assert status["progress"] == {
        "status": "running",
        "step": "Fetching GitHub PRs",
        "progress": 45,
        "detail": "repo 5/15: octo/web",
        "done": 5,
        "total": 15,
        "stepStartedAt": iso(T0 + seconds(5)),
    }

    clock.advance(seconds(15))
    run.finish()
    await ended(service, run)
    done = await steps_of(client, run.ctx.run_id)
    assert done["status"] == "completed"
    assert done["steps"][:2] == running["steps"][:2]
    assert (
        done["steps"][2] | {"endedAt": iso(T0 + seconds(80)), "durationSeconds": 75.0, "percentEnd": 100}
        == (done["steps"][2])
    )


async def test_a_run_without_steps_has_none_and_an_unknown_run_is_the_runs_404(
    client: Client, service: Orchestrator, job: ScriptedJob, clock: FakeClock
) -> None:
    silent = await job.next_start()
    clock.advance(seconds(5))
    silent.finish()  # a job that never reported: no steps (not one long "Starting")
    await ended(service, silent)
    assert (await steps_of(client, silent.ctx.run_id))["steps"] == []
    # A run the history recorded before runs kept steps.
    old = RunRecord("20250101T000000Z-0ld000", (), T0 - seconds(3600), status=RunStatus.COMPLETED)
    service.history.record(old)
    assert await steps_of(client, old.run_id) == {
        "runId": old.run_id,
        "status": "completed",
        "steps": [],
        "truncated": False,
    }
    for path in ("/api/snapshot/runs/nothing-like-it", "/api/snapshot/runs/nothing-like-it/steps"):
        response = await client.get(path)
        assert (response.status, await response.json()) == (
            404,
            {"success": False, "message": "No run 'nothing-like-it' in the history"},
        ), path


async def test_a_run_of_more_steps_than_kept_says_it_is_truncated(
    client: Client, service: Orchestrator, job: ScriptedJob, clock: FakeClock
) -> None:
    run = await job.next_start()
    for number in range(MAX_STEPS + 5):
        run.report(None, f"step {number}")
        clock.advance(seconds(1))
    body = await steps_of(client, run.ctx.run_id)
    assert (len(body["steps"]), body["steps"][-1]["name"], body["truncated"]) == (MAX_STEPS, MORE_STEPS, True)
    run.finish()
    await ended(service, run)
    body = await steps_of(client, run.ctx.run_id)
    assert (len(body["steps"]), body["status"], body["truncated"]) == (MAX_STEPS, "completed", True)


async def test_where_the_time_goes_over_the_last_completed_runs(
    client: Client, service: Orchestrator, job: ScriptedJob, clock: FakeClock
) -> None:
    empty = await (await client.get("/api/snapshot/steps")).json()
    assert empty == {"runs": 0, "runIds": [], "medianRunSeconds": None, "latestRunId": None, "steps": []}
    fetch_times = [600, 700, 650, 1000]  # the last run's fetch is slow
    ids = []
    for number, fetch in enumerate(fetch_times):
        run = await (job.next_start() if number == 0 else _next_manual(service, job))
        await play(run, clock, ("Connecting", 10), ("Fetching GitHub PRs", fetch), ("Writing", 30))
        await ended(service, run)
        ids.append(run.ctx.run_id)
        clock.advance(seconds(60))
    failed = await _next_manual(service, job)
    failed.report(5, "Connecting")
    failed.finish(RunStatus.ERROR, exit_code=1, error="exited with code 1")  # not a completed run: left out
    await ended(service, failed)

    body = await (await client.get("/api/snapshot/steps", params={"runs": "3"})).json()
    totals = [1 + 10 + fetch + 30 for fetch in fetch_times[1:]]
    assert body == {
        "runs": 3,
        "runIds": ids[:0:-1],
        "medianRunSeconds": 741.0,
        "latestRunId": ids[-1],
        "steps": [
            {
                "name": "Starting...",
                "runs": 3,
                "medianSeconds": 1.0,
                "p90Seconds": 1.0,
                "share": round(3 / sum(totals), 4),
                "latestSeconds": 1.0,
                "slow": False,
            },
            {
                "name": "Connecting",
                "runs": 3,
                "medianSeconds": 10.0,
                "p90Seconds": 10.0,
                "share": round(30 / sum(totals), 4),
                "latestSeconds": 10.0,
                "slow": False,
            },
            {
                "name": "Fetching GitHub PRs",
                "runs": 3,
                "medianSeconds": 700.0,
                "p90Seconds": 940.0,
                "share": round(2350 / sum(totals), 4),
                "latestSeconds": 1000.0,
                "slow": False,  # 1000 s is not over 1.5 x 700 s
            },
            {
                "name": "Writing",
                "runs": 3,
                "medianSeconds": 30.0,
                "p90Seconds": 30.0,
                "share": round(90 / sum(totals), 4),
                "latestSeconds": 30.0,
                "slow": False,
            },
        ],
    }
    default = await (await client.get("/api/snapshot/steps")).json()
    assert default["runIds"] == ids[::-1] and default["steps"][2]["medianSeconds"] == 675.0

    slow = await _next_manual(service, job)
    await play(slow, clock, ("Connecting", 10), ("Fetching GitHub PRs", 1100), ("Writing", 30))
    await ended(service, slow)
    # Over the five completed runs (600, 700, 650, 1000, 1100 s): over 1.5 x the median of 700 s.
    fetching = (await (await client.get("/api/snapshot/steps?runs=5")).json())["steps"][2]
    assert (fetching["runs"], fetching["medianSeconds"], fetching["latestSeconds"]) == (5, 700.0, 1100.0)
    assert fetching["slow"] is True


@pytest.mark.parametrize("runs", ["0", "101", "-1", "abc", "", "2.5", "+5", " 5", "\u0665", "9" * 5000])
async def test_a_bad_number_of_runs_is_a_400(client: Client, runs: str) -> None:
    response = await client.get("/api/snapshot/steps", params={"runs": runs})
    assert response.status == 400
    body = await response.json()
    assert body["success"] is False
    assert body["message"].startswith("runs must be a whole number from 1 to 100, got ")


@pytest.mark.service(token=TOKEN, token_for_reads=True)
async def test_steps_are_reads_that_need_the_token_under_token_for_reads(client: Client, job: ScriptedJob) -> None:
    run = await job.next_start()
    paths = (f"/api/snapshot/runs/{run.ctx.run_id}/steps", "/api/snapshot/steps")
    for path in paths:
        assert (await client.get(path)).status == 401, path
    for path in paths:  # (the first answer also sets the read cookie, which lets the client read on)
        allowed = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status == 200, path


async def _next_manual(service: Orchestrator, job: ScriptedJob) -> ScriptedRun:
    await service.request_run(Source.HTTP, "again")
    return await job.next_start()
