"""Pause and resume of the automatic schedule.

The schedule logic on a fake clock and a scripted job (many intervals pass in no time); the HTTP answers,
the persistence across a restart and the CLI against a real service process.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import Source, iso
from orchestrator.core.records import Pause, State
from orchestrator.http import pause
from orchestrator.service import Orchestrator
from orchestrator.store.journal import JOURNAL_FILE_NAME
from orchestrator.store.statefile import StateFile
from tests.fakes import T0, ScriptedJob, Services, assert_idle, ended, minutes, settle
from tests.support import PYTHON, ServiceProcess, saved_state, start_service

pytestmark = pytest.mark.service(interval=30, cooldown=5, after_startup=True)


# ------------------------------------------------------------------------------------------ the schedule
async def test_paused_timer_starts_nothing_however_long_the_pause(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    outcome = pause.pause(service, "maintenance")
    assert outcome.changed and outcome.saved
    assert service.status()["paused"] == {"since": iso(T0), "reason": "maintenance"}
    for _ in range(10):  # five hours: ten intervals
        clock.advance(minutes(30))
        await settle()
    assert_idle(service)
    assert job.started.empty(), "no automatic run while paused"
    status = service.status()
    # nextRunAt still says when the schedule would run: overdue, so at once on resume.
    assert status["nextRunAt"] == iso(T0 + minutes(30))
    assert status["minutesUntilNextRun"] == 0
    assert status["paused"]["since"] == iso(T0)


async def test_manual_triggers_run_while_paused(service: Orchestrator, clock: FakeClock, job: ScriptedJob) -> None:
    pause.pause(service)
    clock.advance(minutes(1))
    await service.request_run(Source.HTTP, "by hand")
    run = await job.next_start()
    assert run.ctx.source is Source.HTTP and run.ctx.reason == "by hand"
    run.finish()
    await ended(service, run)
    assert service.status()["paused"] is not None, "a manual run leaves the pause alone"


async def test_resume_runs_one_catch_up_at_once_then_keeps_the_interval(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    pause.pause(service)
    clock.advance(minutes(100))  # three intervals missed
    await settle()
    assert_idle(service)
    assert job.started.empty()
    outcome = pause.resume(service)
    assert outcome.changed and outcome.paused is None
    catch_up = await job.next_start()
    assert catch_up.ctx.source is Source.TIMER
    catch_up.finish()
    await ended(service, catch_up)
    assert job.started.empty(), "one catch-up run, not one per missed interval"
    assert service.status()["nextRunAt"] == iso(T0 + minutes(130))
    clock.advance(minutes(30))
    assert (await job.next_start()).ctx.source is Source.TIMER


async def test_resume_before_the_due_time_waits_for_it(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob
) -> None:
    pause.pause(service)
    clock.advance(minutes(10))
    pause.resume(service)
    await settle()
    assert_idle(service)
    assert job.started.empty()
    clock.advance(minutes(20))  # T0+30: due as if there had been no pause
    assert (await job.next_start()).ctx.source is Source.TIMER


async def test_a_second_pause_keeps_the_first_and_a_second_resume_changes_nothing(
    service: Orchestrator, clock: FakeClock
) -> None:
    first = pause.pause(service, "first")
    clock.advance(minutes(3))
    again = pause.pause(service, "second")
    assert not again.changed
    assert again.paused == first.paused == Pause(T0, "first")
    assert pause.resume(service).changed
    assert not pause.resume(service).changed
    assert service.status()["paused"] is None


async def test_pause_and_resume_are_published(service: Orchestrator) -> None:
    version, _ = service.hub.latest()
    pause.pause(service, "x")
    version, doc = service.hub.latest()
    assert doc["paused"] == {"since": iso(T0), "reason": "x"}
    pause.resume(service)
    newer, doc = service.hub.latest()
    assert newer > version and doc["paused"] is None


async def test_pause_survives_a_restart_and_holds_from_the_start(clock: FakeClock, services: Services) -> None:
    job = ScriptedJob()
    first = await services.start(job=job)
    startup = await job.next_start()
    startup.finish()
    await ended(first, startup)
    pause.pause(first, "until Monday")
    await first.stop()

    clock.advance(minutes(120))  # down for four intervals: normally one run right at start
    job2 = ScriptedJob()
    second = await services.start(job=job2)
    await settle()
    assert_idle(second)
    assert job2.started.empty(), "paused before the stop, still paused: no start-up catch-up"
    assert second.status()["paused"] == {"since": iso(T0), "reason": "until Monday"}
    pause.resume(second)
    assert (await job2.next_start()).ctx.source is Source.TIMER


async def test_a_pause_that_cannot_be_saved_still_holds_and_says_so(
    service: Orchestrator, clock: FakeClock, job: ScriptedJob, caplog: pytest.LogCaptureFixture
) -> None:
    state_path = service.settings.store.state_path
    journal = state_path.with_name(JOURNAL_FILE_NAME)
    for path in (state_path, journal):  # the atomic rename onto it, or the append, fails, as on a full disk
        path.unlink(missing_ok=True)
        path.mkdir()
    outcome = pause.pause(service, "disk trouble")
    assert outcome.changed and not outcome.saved
    assert "cannot save state" in caplog.text
    clock.advance(minutes(90))
    await settle()
    assert_idle(service)
    assert job.started.empty(), "the pause holds in memory"
    state_path.rmdir()
    journal.rmdir()
    assert pause.resume(service).saved
    assert saved_state(state_path.parent)["paused"] is None
    assert (await job.next_start()).ctx.source is Source.TIMER


def test_a_state_file_from_before_pausing_loads_unpaused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "orchestrator_state.json"
    old = {"version": 1, "lastRun": None, "current": None, "notBefore": None, "pending": [], "pendingCount": 0}
    path.write_text(json.dumps(old))
    assert StateFile(path).job("snapshot").load() == State()
    assert "pause" not in caplog.text, "a file from before pausing is no news"
    for damaged in ({"since": "yesterday"}, "paused", {"reason": "no time"}, 7):
        caplog.clear()
        path.write_text(json.dumps({**old, "paused": damaged}))
        assert StateFile(path).job("snapshot").load().paused is None, damaged
        assert "the saved pause is damaged" in caplog.text and "automatic snapshots are ON again" in caplog.text
    path.write_text(json.dumps({**old, "paused": {"since": "2026-01-20T10:00:00.000Z", "reason": "a\nb"}}))
    assert StateFile(path).job("snapshot").load().paused == Pause(T0, "a b")


# --------------------------------------------------------------------------------- HTTP, restart, CLI
TOKEN = "pause-test-token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("pause")
    service = start_service(root, "--command", "true", "--interval", "600", env={"SNAPSHOT_TOKEN": TOKEN})
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def post(service: ServiceProcess, path: str, body: Any = None, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(service.url + path, json=body, headers=headers, timeout=10)


def cli(service: ServiceProcess, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "orchestrator", *args, "--url", service.url],
        env={**os.environ, "SNAPSHOT_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


@pytest.mark.process
def test_pause_and_resume_over_http(guarded: ServiceProcess) -> None:
    answer = post(guarded, "/api/snapshot/pause", {"reason": "deploy\tin progress"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and "paused" in body["message"]
    assert body["paused"]["reason"] == "deploy in progress"  # cleaned like every reason
    since = body["paused"]["since"]
    guarded.wait_for_log("automatic snapshots paused from 127.0.0.1 (reason: deploy in progress)")

    again = post(guarded, "/api/snapshot/pause", {"reason": "other"}).json()
    assert again["paused"] == {"since": since, "reason": "deploy in progress"}
    assert "Already paused" in again["message"]
    assert guarded.get_json("/api/snapshot/status")["paused"] == {"since": since, "reason": "deploy in progress"}

    resumed = post(guarded, "/api/snapshot/resume")
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is None and "resumed" in resumed.json()["message"]
    assert guarded.get_json("/api/snapshot/status")["paused"] is None
    not_paused = post(guarded, "/api/snapshot/resume").json()
    assert not_paused == {"success": True, "message": "Not paused; automatic snapshots are on", "paused": None}


@pytest.mark.process
def test_pause_refuses_bad_bodies_and_missing_tokens(guarded: ServiceProcess) -> None:
    for bad in ([1, 2], {"reason": 5}):
        answer = post(guarded, "/api/snapshot/pause", bad)
        assert answer.status_code == 400, answer.text
        assert answer.json()["success"] is False
    for path in ("/api/snapshot/pause", "/api/snapshot/resume"):
        assert post(guarded, path, token=None).status_code == 401
    assert guarded.get_json("/api/snapshot/status")["paused"] is None, "nothing refused changed anything"


@pytest.mark.process
def test_cli_pause_and_resume(guarded: ServiceProcess) -> None:
    paused = cli(guarded, "pause", "--reason", "from the CLI")
    assert paused.returncode == 0, paused.stderr
    assert "paused" in paused.stdout
    assert guarded.get_json("/api/snapshot/status")["paused"]["reason"] == "from the CLI"
    status = cli(guarded, "status")
    assert "Paused:" in status.stdout and "from the CLI" in status.stdout
    resumed = cli(guarded, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    assert guarded.get_json("/api/snapshot/status")["paused"] is None

    refused = cli(guarded, "pause", token="wrong-token-123")
    assert refused.returncode == 2
    assert "answered 401" in refused.stderr
    gone = subprocess.run(
        [PYTHON, "-m", "orchestrator", "resume", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert gone.returncode == 2 and "cannot reach http://127.0.0.1:9" in gone.stderr


@pytest.mark.process
def test_a_pause_survives_a_restart_of_the_service(service_factory: Any, tmp_path: Path) -> None:
    first = service_factory("--command", "true", "--interval", "600")
    assert first.post_json("/api/snapshot/pause", {"reason": "kept"})[0] == 200
    since = first.get_json("/api/snapshot/status")["paused"]["since"]
    assert first.stop() == 0
    second = service_factory("--command", "true", "--interval", "600")
    assert second.get_json("/api/snapshot/status")["paused"] == {"since": since, "reason": "kept"}
