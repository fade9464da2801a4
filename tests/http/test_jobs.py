"""Every job over HTTP, on a service of three jobs (tests/http/conftest.py): each job's operations at
``/api/jobs/{job}/...`` answer for that job, ``/api/snapshot/...`` for the default job (here ``main``), an unknown
job is a JSON 404 naming it, runs are each job's, and ``GET /api/jobs`` and ``GET /api/runs`` are every job's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.http.app import create_app
from orchestrator.service import Orchestrator
from tests.fakes import T0, Client, ScriptedJob, end_startup, ended, minutes
from tests.http.conftest import JOBS, several_jobs

UNKNOWN = "nope"
PER_JOB = [
    ("GET", "/status"),
    ("GET", "/progress"),
    ("POST", "/trigger"),
    ("POST", "/cancel"),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("GET", "/runs"),
    ("GET", "/runs/20260120T100000Z-abcdef"),
    ("GET", "/runs/20260120T100000Z-abcdef/log"),
    ("GET", "/runs/20260120T100000Z-abcdef/log/stream"),
    ("GET", "/runs/20260120T100000Z-abcdef/steps"),
    ("GET", "/steps"),
    ("GET", "/events"),
]
"""Every operation a job has, by its path after ``/api/jobs/{job}`` (and ``/api/snapshot``)."""


@pytest.fixture
async def started(jobs_client: Client, jobs_service: Orchestrator, job: ScriptedJob, clock: FakeClock) -> Client:
    """The service of three jobs after the default job's start-up run, a minute later."""
    await end_startup(jobs_service, job)
    clock.advance(minutes(1))
    return jobs_client


def record(service: Orchestrator, job: str, run_id: str, started_at: timedelta) -> RunRecord:
    """A finished run of ``job`` put in the service's history (a run of a job the tests do not start)."""
    run = RunRecord(
        run_id,
        (Trigger(Source.HTTP, T0 + started_at, "seeded"),),
        T0 + started_at,
        status=RunStatus.COMPLETED,
        finished_at=T0 + started_at + minutes(1),
        exit_code=0,
        job=job,
    )
    service.history.record(run)
    return run


async def test_each_job_answers_with_its_own_status(started: Client) -> None:
    documents = {name: await (await started.get(f"/api/jobs/{name}/status")).json() for name in JOBS}
    assert {name: doc["job"] for name, doc in documents.items()} == {name: name for name in JOBS}
    main, nightly, report = (documents[name] for name in JOBS)
    assert main["schedule"] == {"kind": "interval", "minutes": 30} and main["lastRun"]["job"] == "main"
    assert main["nextRunAt"] == "2026-01-20T10:30:00.000Z"
    assert nightly["schedule"] == {"kind": "cron", "expression": "0 3 * * *", "timezone": "UTC"}
    assert nightly["nextRunAt"] == "2026-01-21T03:00:00.000Z" and nightly["intervalMinutes"] is None
    assert report["schedule"] == {"kind": "manual"} and report["lastRun"] is None
    assert (report["nextRunAt"], report["minutesUntilNextRun"], report["secondsUntilNextRun"]) == (None, None, None)
    progress = await (await started.get("/api/jobs/report/progress")).json()
    assert progress["status"] == "idle"


async def test_api_snapshot_is_the_default_job_whatever_its_name(started: Client) -> None:
    default = await (await started.get("/api/snapshot/status")).json()
    assert default == await (await started.get("/api/jobs/main/status")).json()
    assert default["job"] == "main"


async def test_api_snapshot_is_the_default_job_named_snapshot_too(
    tmp_path: Path,
    clock: FakeClock,
    job: ScriptedJob,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    text = (
        'default-job = "snapshot"\n[jobs.first]\ncommand = "true"\n[jobs.snapshot]\ncommand = "true"\ninterval = 30\n'
    )
    service, _ = several_jobs(tmp_path, clock, job, text)
    client = await aiohttp_client(create_app(service))
    await end_startup(service, job)
    assert (await (await client.get("/api/snapshot/status")).json())["job"] == "snapshot"
    listed = await (await client.get("/api/jobs")).json()
    assert ([doc["job"] for doc in listed["jobs"]], listed["defaultJob"]) == (["first", "snapshot"], "snapshot")


@pytest.mark.parametrize(("method", "suffix"), PER_JOB, ids=[f"{m} {s}" for m, s in PER_JOB])
async def test_an_unknown_job_is_a_json_404_naming_it(started: Client, method: str, suffix: str) -> None:
    response = await started.request(method, f"/api/jobs/{UNKNOWN}{suffix}")
    assert response.status == 404
    assert await response.json() == {"success": False, "message": f"no job named {UNKNOWN!r}"}


async def test_an_unknown_job_elsewhere_is_a_json_404_too(started: Client) -> None:
    for path in (f"/api/runs?job={UNKNOWN}", "/api/runs?job=", f"/badge/{UNKNOWN}.svg"):
        response = await started.get(path)
        assert response.status == 404, path
        assert (await response.json())["success"] is False


async def test_api_jobs_lists_every_job_as_its_status_says_it(started: Client, clock: FakeClock) -> None:
    clock.advance(minutes(10))  # each document's clock fields are as of the request, as /status's are
    listed = await (await started.get("/api/jobs")).json()
    assert listed["defaultJob"] == "main"
    assert [doc["job"] for doc in listed["jobs"]] == JOBS  # the jobs file's order
    for document in listed["jobs"]:
        assert document == await (await started.get(f"/api/jobs/{document['job']}/status")).json()
    assert listed["jobs"][0]["minutesUntilNextRun"] == 19


async def test_a_job_pauses_and_resumes_alone(started: Client) -> None:
    paused = await started.post("/api/jobs/report/pause", json={"reason": "quiet"})
    assert paused.status == 200
    assert (await paused.json())["message"] == "Automatic runs of job report paused; manual triggers still run"
    assert (await (await started.get("/api/jobs/report/status")).json())["paused"]["reason"] == "quiet"
    assert (await (await started.get("/api/snapshot/status")).json())["paused"] is None
    resumed = await (await started.post("/api/jobs/report/resume")).json()
    assert resumed["message"] == "Resumed; the job has no automatic runs (it runs on triggers)"
    assert (await (await started.get("/api/jobs/report/status")).json())["paused"] is None


async def test_the_default_job_is_triggered_and_cancelled_at_either_path(started: Client, job: ScriptedJob) -> None:
    triggered = await started.post("/api/jobs/main/trigger", json={"reason": "by name"})
    assert triggered.status == 202 and (await triggered.json())["message"] == "Job main triggered"
    run = await job.next_start()
    assert (run.ctx.source, run.ctx.reason) == (Source.HTTP, "by name")
    queued = await (await started.post("/api/snapshot/trigger")).json()
    assert queued["queued"] is True and queued["message"] == "Job main queued to run when the current one ends"
    cancelled = await started.post("/api/snapshot/cancel")
    assert (await cancelled.json())["message"] == f"Cancelling run {run.ctx.run_id} of job main"
    nothing = await started.post("/api/jobs/report/cancel")
    assert (nothing.status, (await nothing.json())["message"]) == (409, "Job report is not running")


async def test_runs_are_listed_by_job_and_all_together(started: Client, jobs_service: Orchestrator) -> None:
    startup = (await (await started.get("/api/snapshot/status")).json())["lastRun"]["runId"]
    record(jobs_service, "report", "20260120T100500Z-aaaaaa", minutes(5))
    record(jobs_service, "nightly", "20260120T100600Z-bbbbbb", minutes(6))

    def ids(page: dict[str, Any]) -> list[tuple[str, str]]:
        return [(run["runId"], run["job"]) for run in page["runs"]]

    assert ids(await (await started.get("/api/jobs/report/runs")).json()) == [("20260120T100500Z-aaaaaa", "report")]
    assert ids(await (await started.get("/api/snapshot/runs")).json()) == [(startup, "main")]
    every = await (await started.get("/api/runs")).json()
    assert ids(every) == [
        ("20260120T100600Z-bbbbbb", "nightly"),
        ("20260120T100500Z-aaaaaa", "report"),
        (startup, "main"),
    ]
    first = await (await started.get("/api/runs?limit=1")).json()
    assert ids(first) == [("20260120T100600Z-bbbbbb", "nightly")] and first["nextCursor"]
    rest = await (await started.get(f"/api/runs?limit=2&cursor={first['nextCursor']}")).json()
    assert ids(rest) == [("20260120T100500Z-aaaaaa", "report"), (startup, "main")] and rest["nextCursor"] is None
    assert ids(await (await started.get("/api/runs?job=nightly")).json()) == [("20260120T100600Z-bbbbbb", "nightly")]


async def test_a_run_of_another_job_is_not_found_on_this_jobs_paths(
    started: Client, jobs_service: Orchestrator
) -> None:
    run_id = record(jobs_service, "report", "20260120T100500Z-aaaaaa", minutes(5)).run_id
    answer = await started.get(f"/api/jobs/report/runs/{run_id}")
    assert answer.status == 200 and (await answer.json())["job"] == "report"
    for prefix in ("/api/jobs/main", "/api/snapshot", "/api/jobs/nightly"):
        for suffix in ("", "/log", "/log/stream", "/steps"):
            response = await started.get(f"{prefix}/runs/{run_id}{suffix}")
            assert response.status == 404, (prefix, suffix)
            assert "is a run of job 'report'" in (await response.json())["message"], (prefix, suffix)
    steps = await started.get(f"/api/jobs/report/runs/{run_id}/steps")
    assert steps.status == 200 and (await steps.json())["steps"] == []


async def test_where_the_time_goes_is_each_jobs_own(
    started: Client, jobs_service: Orchestrator, job: ScriptedJob
) -> None:
    await started.post("/api/jobs/main/trigger")
    run = await job.next_start()
    run.report(50, "Working")
    run.finish()
    await ended(jobs_service, run)
    main = await (await started.get("/api/jobs/main/steps")).json()
    assert main["runIds"] == [run.ctx.run_id]
    assert main == await (await started.get("/api/snapshot/steps")).json()
    assert (await (await started.get("/api/jobs/report/steps")).json())["runIds"] == []


async def test_the_badge_shows_any_job(started: Client) -> None:
    badge = await started.get("/badge/report.svg")
    assert badge.status == 200 and badge.headers["Content-Type"].startswith("image/svg+xml")
    assert "report: never run" in await badge.text()
    assert "main: completed" in await (await started.get("/badge/main.svg")).text()


@pytest.mark.service(trigger_limit=2)
async def test_one_trigger_limit_for_every_jobs_trigger(started: Client, job: ScriptedJob) -> None:
    assert (await started.post("/api/jobs/main/trigger")).status == 202
    assert (await started.post("/api/snapshot/trigger")).status == 202
    for path in ("/api/jobs/report/trigger", "/api/snapshot/trigger", f"/api/jobs/{UNKNOWN}/trigger"):
        refused = await started.post(path)
        assert refused.status == 429, path
        assert "Too many triggers" in (await refused.json())["message"]
    await job.next_start()


TOKEN = "jobs-test-token"


@pytest.mark.service(token=TOKEN)
async def test_every_change_of_any_job_needs_the_token(started: Client) -> None:
    changes = ["/api/reload"] + [
        f"{prefix}{suffix}"
        for prefix in ("/api/jobs/report", "/api/snapshot")
        for suffix in ("/trigger", "/cancel", "/pause", "/resume")
    ]
    for path in changes:
        refused = await started.post(path)
        assert refused.status == 401, path
    for path in ("/api/jobs", "/api/runs", "/api/jobs/report/status"):  # reads stay open without --token-for-reads
        assert (await started.get(path)).status == 200, path
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await started.post("/api/jobs/report/pause", headers=bearer)).status == 200
    assert (await started.post("/api/reload", headers=bearer)).status == 200


@pytest.mark.service(token=TOKEN, token_for_reads=True)
async def test_every_read_of_any_job_needs_the_token_under_token_for_reads(started: Client) -> None:
    reads = ("/api/jobs", "/api/runs", "/api/jobs/report/status", "/api/jobs/report/runs", "/badge/report.svg")
    for path in reads:
        assert (await started.get(path)).status == 401, path
    for path in reads:  # (the first answer sets the read cookie, which the client sends from then on)
        assert (await started.get(path, headers={"Authorization": f"Bearer {TOKEN}"})).status == 200, path


async def test_a_jobs_trigger_is_safe_to_repeat_with_an_idempotency_key(started: Client, job: ScriptedJob) -> None:
    headers = {"Idempotency-Key": "click-1"}
    first = await started.post("/api/jobs/main/trigger", json={"reason": "once"}, headers=headers)
    again = await started.post("/api/jobs/main/trigger", json={"reason": "once"}, headers=headers)
    assert (first.status, again.status) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    await job.next_start()
    # The same key on the default job's path is another request (another path): refused, nothing runs.
    other = await started.post("/api/snapshot/trigger", json={"reason": "once"}, headers=headers)
    assert other.status == 409
