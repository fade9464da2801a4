"""``GET /metrics``: parsed with prometheus_client's own parser, from a real service after real runs (a completed
and a failing job), across a restart, behind ``--token-for-reads``; the counting logic with a fake clock and a
scripted job."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger, parse_iso
from orchestrator.core.records import RunRecord, State
from orchestrator.core.runevents import RunFinished
from orchestrator.core.steps import STARTING, Step
from orchestrator.ops.metrics import MAX_STEP_NAMES, OTHER_STEPS, last_success
from orchestrator.service import Orchestrator
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.statefile import StateFile
from tests.fakes import T0, WAIT, Client, ScriptedJob, Services, ended, make_orchestrator, make_settings, minutes
from tests.support import ServiceProcess, job_command, next_status, sse_stream, start_service

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Fails when its reason says so, after reporting 40 %: one completed and one failing run from one command.
JOB = job_command(
    "import os, sys\n"
    "print('PROGRESS 40 half way', flush=True)\n"
    "sys.exit(3 if 'fail' in os.environ['SNAPSHOT_REASON'] else 0)\n"
)
TOKEN = "metrics-test-token"


def parse(text: str) -> Samples:
    """Every sample as ``(name, sorted labels) -> value``; the parser raises on anything not in the format."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


SERVICE_WIDE = frozenset({"snapshot_sse_clients", "snapshot_log_streams"})
"""The series of the service; every other one is a job's, with its ``job`` label."""


def value(samples: Samples, name: str, job: str = "snapshot", **labels: str) -> float:
    """The sample of ``name`` with ``labels``; of ``job`` (the default job unless told), if it is a job's."""
    if name not in SERVICE_WIDE:
        labels["job"] = job
    return samples[(name, tuple(sorted(labels.items())))]


def scrape(service: ServiceProcess, headers: dict[str, str] | None = None) -> tuple[str, Samples]:
    request = urllib.request.Request(service.url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        content_type = response.headers["Content-Type"]
        return content_type, parse(response.read().decode())


def unix(text: str) -> float:
    at = parse_iso(text)
    assert at is not None, text
    return at.timestamp()


# ------------------------------------------------------------------------------------------ real service
@pytest.mark.process
async def test_runs_durations_and_last_success_after_real_runs(tmp_path: Path) -> None:
    service = start_service(tmp_path, "--command", JOB, "--interval", "600")
    try:
        service.wait_ready()
        async with aiohttp.ClientSession() as session:
            events = sse_stream(session, service.url + "/api/snapshot/events")
            completed = (await next_status(events, lambda d: _ended(d, "completed")))["lastRun"]
            await asyncio.to_thread(service.post_json, "/api/snapshot/trigger", {"reason": "please fail"})
            failed = (await next_status(events, lambda d: _ended(d, "error")))["lastRun"]
            # The stream is still open: it counts as a client.
            content_type, samples = await asyncio.to_thread(scrape, service)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        assert value(samples, "snapshot_runs_total", source="startup", outcome="completed") == 1
        assert value(samples, "snapshot_runs_total", source="http", outcome="error") == 1
        assert value(samples, "snapshot_runs_total", source="http", outcome="completed") == 0
        assert value(samples, "snapshot_run_duration_seconds_count", outcome="completed") == 1
        assert value(samples, "snapshot_run_duration_seconds_count", outcome="error") == 1
        assert value(samples, "snapshot_run_duration_seconds_sum", outcome="error") == pytest.approx(
            failed["durationSeconds"], abs=0.002
        )
        assert value(samples, "snapshot_run_duration_seconds_bucket", outcome="error", le="+Inf") == 1
        # The completed run's step; the failing run failed in it (cut short, not observed).
        assert value(samples, "snapshot_step_duration_seconds_count", step="half way") == 1
        assert value(samples, "snapshot_last_success_timestamp_seconds") == pytest.approx(
            unix(completed["finishedAt"]), abs=0.002
        )
        assert value(samples, "snapshot_last_run_end_timestamp_seconds") == pytest.approx(
            unix(failed["finishedAt"]), abs=0.002
        )
        assert value(samples, "snapshot_last_run_success") == 0
        assert value(samples, "snapshot_progress_percent") == 40  # where the failing run stopped
        assert value(samples, "snapshot_triggers_total", source="http") == 1
        assert value(samples, "snapshot_triggers_total", source="startup") == 1
        assert value(samples, "snapshot_triggers_coalesced_total") == 0
        assert value(samples, "snapshot_running") == 0
        assert value(samples, "snapshot_paused") == 0
        assert value(samples, "snapshot_sse_clients") == 1
        assert value(samples, "snapshot_log_streams") == 0  # counted apart from the event streams
        assert value(samples, "snapshot_interval_seconds") == 36000
        running_since = ("snapshot_current_run_start_timestamp_seconds", (("job", "snapshot"),))
        assert running_since not in samples  # only while running
    finally:
        service.stop()

    # Restarted: the counters start again from 0, the last success is still the one before (from the history:
    # the state file's last run is the failing one).
    restarted = start_service(tmp_path, "--command", JOB, "--interval", "600")
    try:
        restarted.wait_ready()
        _, samples = await asyncio.to_thread(scrape, restarted)
        assert value(samples, "snapshot_last_success_timestamp_seconds") == pytest.approx(
            unix(completed["finishedAt"]), abs=0.002
        )
        assert value(samples, "snapshot_runs_total", source="http", outcome="error") == 0
        assert value(samples, "snapshot_last_run_success") == 0
    finally:
        restarted.stop()


def _ended(document: dict[str, Any], status: str) -> bool:
    last = document["lastRun"]
    return not document["running"] and last is not None and last["status"] == status


@pytest.mark.process
def test_token_for_reads_guards_metrics(service_factory: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    service = service_factory("--command", "true", "--interval", "600", env={"SNAPSHOT_TOKEN": TOKEN})
    assert "snapshot_running" in {name for name, _ in scrape(service)[1]}, "open without --token-for-reads"
    guarded = service_factory(
        "--command",
        "true",
        "--interval",
        "600",
        "--token-for-reads",
        env={"SNAPSHOT_TOKEN": TOKEN},
        root=tmp_path / "guarded",
    )
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(guarded, headers)
        with refused.value:  # closes its connection
            assert refused.value.code == 401
            assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
    request = urllib.request.Request(guarded.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert "Set-Cookie" not in response.headers  # the read cookie is for /api/ only
        assert parse(response.read().decode())[("snapshot_running", (("job", "snapshot"),))] in (0, 1)


# ------------------------------------------------------------------------------------------------ logic
async def until(service: Orchestrator, predicate: Callable[[dict[str, Any]], bool]) -> None:
    version, document = service.hub.latest()
    async with asyncio.timeout(WAIT):
        while not predicate(document):
            version, document = await service.hub.next_after(version)


def metrics_of(service: Orchestrator) -> Samples:
    return parse(service.metrics.render().decode())


async def test_triggers_during_a_run_are_counted_as_coalesced(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    first = await job.next_start()
    running = metrics_of(service)
    assert value(running, "snapshot_running") == 1
    assert value(running, "snapshot_current_run_start_timestamp_seconds") == T0.timestamp()
    for n in range(5):
        await service.request_run(Source.HTTP, f"click {n}")
    await until(service, lambda d: d["pendingTriggers"] == 5)
    queued = metrics_of(service)
    assert value(queued, "snapshot_pending_triggers") == 5
    assert value(queued, "snapshot_run_queued") == 1
    assert value(queued, "snapshot_triggers_total", source="http") == 5
    assert value(queued, "snapshot_triggers_coalesced_total") == 0, "counted when the run absorbs them"

    clock.advance(minutes(3))
    first.finish()
    follow_up = await job.next_start()
    assert value(metrics_of(service), "snapshot_triggers_coalesced_total") == 4  # 5 triggers, 1 run
    follow_up.finish(RunStatus.ERROR, exit_code=1, error="exit code 1")
    await ended(service, follow_up)
    done = metrics_of(service)
    assert value(done, "snapshot_runs_total", source="startup", outcome="completed") == 1
    assert value(done, "snapshot_runs_total", source="http", outcome="error") == 1
    assert value(done, "snapshot_run_duration_seconds_bucket", outcome="completed", le="120.0") == 0
    assert value(done, "snapshot_run_duration_seconds_bucket", outcome="completed", le="300.0") == 1
    assert value(done, "snapshot_last_success_timestamp_seconds") == (T0 + minutes(3)).timestamp()
    assert value(done, "snapshot_last_run_success") == 0
    assert value(done, "snapshot_pending_triggers") == 0
    assert value(done, "snapshot_next_run_timestamp_seconds") == (T0 + minutes(33)).timestamp()  # follow-up + 30


async def test_paused_is_read_from_the_status_document(service: Orchestrator, monkeypatch: pytest.MonkeyPatch) -> None:
    job = service.unit  # what the metrics watch
    status = job.status
    monkeypatch.setattr(job, "status", lambda: {**status(), "paused": {"since": "x", "reason": "r"}})
    assert value(metrics_of(service), "snapshot_paused") == 1
    monkeypatch.setattr(job, "status", lambda: {**status(), "paused": None})
    assert value(metrics_of(service), "snapshot_paused") == 0


async def test_an_interrupted_run_counts_as_an_error_but_adds_no_duration(
    tmp_path: Path, job: ScriptedJob, services: Services
) -> None:
    """The service died mid-run: its end is told at start; its "duration" would include the downtime."""
    settings = make_settings(tmp_path)
    settings.store.data_dir.mkdir(parents=True)
    lost = RunRecord("20260120T080000Z-abcdef", (Trigger(Source.FILE, T0 - minutes(120)),), T0 - minutes(120))
    success = RunRecord(
        "20260120T070000Z-abcdef", (), T0 - minutes(180), status=RunStatus.COMPLETED, finished_at=T0 - minutes(170)
    )
    StateFile(settings.store.state_path).job("snapshot").save(State(last_run=success, current=lost))
    SqliteHistory(settings.store.data_dir / HISTORY_FILE_NAME).record(success)
    orchestrator = await services.start()
    await job.next_start()  # the start-up run: the recovered one was told as finished before it
    samples = metrics_of(orchestrator)
    assert value(samples, "snapshot_runs_total", source="file", outcome="error") == 1
    assert value(samples, "snapshot_run_duration_seconds_count", outcome="error") == 0
    # The state's last run is now the interrupted one; the last success is found in the history instead.
    assert value(samples, "snapshot_last_success_timestamp_seconds") == (T0 - minutes(170)).timestamp()


def test_each_service_has_its_own_registry(tmp_path: Path) -> None:
    one = make_orchestrator(tmp_path / "a", FakeClock(T0), ScriptedJob())
    two = make_orchestrator(tmp_path / "b", FakeClock(T0), ScriptedJob())
    one.metrics.coalesced.labels("snapshot").inc(3)
    assert value(metrics_of(one), "snapshot_triggers_coalesced_total") == 3
    assert value(metrics_of(two), "snapshot_triggers_coalesced_total") == 0


def test_an_unreadable_history_leaves_the_last_success_unknown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The history's file made unopenable after the start (a folder where the file was): one error line, 0."""
    path = tmp_path / HISTORY_FILE_NAME
    history = SqliteHistory(path)
    path.unlink()
    path.mkdir()
    assert last_success(None, history) is None
    assert [r.levelname for r in caplog.records if "last success" in r.getMessage()] == ["ERROR"]


# ------------------------------------------------------------------------------------------------ steps
def steps_count(samples: Samples, step: str) -> float:
    return samples.get(("snapshot_step_duration_seconds_count", (("job", "snapshot"), ("step", step))), 0)


async def test_step_durations_are_observed_as_runs_end(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    first = await job.next_start()
    clock.advance(timedelta(seconds=3))
    first.report(10, "fetch")  # after 3 s of start-up
    clock.advance(minutes(2))
    first.report(80, "write")
    assert steps_count(metrics_of(service), "fetch") == 0, "observed when the run ends"
    clock.advance(timedelta(seconds=30))
    first.finish()
    await ended(service, first)
    samples = metrics_of(service)
    assert value(samples, "snapshot_step_duration_seconds_sum", step=STARTING) == 3
    assert value(samples, "snapshot_step_duration_seconds_sum", step="fetch") == 120
    assert value(samples, "snapshot_step_duration_seconds_bucket", step="fetch", le="60.0") == 0
    assert value(samples, "snapshot_step_duration_seconds_bucket", step="fetch", le="120.0") == 1
    assert value(samples, "snapshot_step_duration_seconds_sum", step="write") == 30

    # A run that fails in a step: that step was cut short, the ones before it are observed.
    await service.request_run(Source.HTTP)
    second = await job.next_start()
    second.report(10, "fetch")
    clock.advance(minutes(3))
    second.report(80, "write")
    clock.advance(timedelta(seconds=1))
    second.finish(RunStatus.ERROR, exit_code=1, error="disk full")
    await ended(service, second)
    samples = metrics_of(service)
    assert value(samples, "snapshot_step_duration_seconds_count", step="fetch") == 2
    assert value(samples, "snapshot_step_duration_seconds_sum", step="fetch") == 300
    assert value(samples, "snapshot_step_duration_seconds_count", step="write") == 1


def test_step_names_beyond_the_bound_share_one_series(tmp_path: Path) -> None:
    metrics = make_orchestrator(tmp_path, FakeClock(T0), ScriptedJob()).metrics
    run = RunRecord("r", (), T0, status=RunStatus.COMPLETED, finished_at=T0 + minutes(60))
    many = tuple(Step(f"repo {n}", T0 + minutes(n), T0 + minutes(n + 1)) for n in range(MAX_STEP_NAMES + 10))
    metrics.run_finished(RunFinished(run, many))
    metrics.run_finished(RunFinished(run, (Step("repo 0", T0, T0 + minutes(2)), Step("new", T0, T0 + minutes(1)))))
    samples = parse(metrics.render().decode())
    labels = {dict(labels)["step"] for (name, labels) in samples if name == "snapshot_step_duration_seconds_count"}
    assert len(labels) == MAX_STEP_NAMES + 1
    assert OTHER_STEPS in labels and "repo 49" in labels and "repo 50" not in labels
    assert value(samples, "snapshot_step_duration_seconds_count", step=OTHER_STEPS) == 11  # ten, and "new"
    assert value(samples, "snapshot_step_duration_seconds_count", step="repo 0") == 2, "a name kept stays its own"


async def test_metrics_over_http_carry_the_step_durations(
    client: Client, service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    run = await job.next_start()
    run.report(50, 'say "hi"\\')  # quoted and escaped in the exposition format, read back as it was
    clock.advance(minutes(5))
    run.finish()
    await ended(service, run)
    response = await client.get("/metrics")
    assert response.status == 200
    samples = parse(await response.text())
    assert value(samples, "snapshot_step_duration_seconds_sum", step='say "hi"\\') == 300
    assert value(samples, "snapshot_step_duration_seconds_bucket", step='say "hi"\\', le="+Inf") == 1
    assert value(samples, "snapshot_step_duration_seconds_count", step=STARTING) == 1
