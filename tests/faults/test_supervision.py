"""Supervising the job, for real: process trees, timeouts, stalls, cancels, service signals and crashes, and a
second service on the same data folder. Every test runs ``python -m orchestrator serve`` as a subprocess with a
real job, and checks what the job's processes, the service's answers and the files say afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.faults.harness import FileChanges
from tests.support import (
    PYTHON,
    ServiceProcess,
    alive,
    free_port,
    job_command,
    next_status,
    sample_command,
    saved_state,
    sse_stream,
)

pytestmark = pytest.mark.process

TREE_JOB = "sh -c 'sleep 1000 & sleep 1000 & echo PROGRESS 5 children started; wait'"
"""A job whose children and grandchildren would outlive it if only the job itself were signalled."""

DEAF_JOB = job_command(
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('PROGRESS 5', os.getpid(), flush=True)\n"
    "time.sleep(1000)\n"
)
"""A job that ignores SIGTERM: only SIGKILL ends it."""

QUIET_JOB = job_command("import os, time\nprint('PROGRESS 5', os.getpid(), flush=True)\ntime.sleep(1000)\n")
"""A job that reports once and then hangs."""


def processes_of(run_id: str) -> list[int]:
    """Live processes started for ``run_id``: the job hands ``SNAPSHOT_RUN_ID`` to everything it starts."""
    marker = f"SNAPSHOT_RUN_ID={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as env:
                if marker in env.read().split(b"\0") and alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@asynccontextmanager
async def running(service: ServiceProcess) -> AsyncIterator[tuple[AsyncIterator[Any], dict[str, Any]]]:
    """An open event stream of ``service`` and the status once its job has reported 5 %."""
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        yield events, await next_status(events, lambda d: d["running"] and d["progress"]["progress"] == 5)


def ended(document: dict[str, Any], run_id: str) -> bool:
    return not document["running"] and (document["lastRun"] or {}).get("runId") == run_id


async def test_cancel_stops_the_whole_process_tree(service_factory: Any) -> None:
    service = service_factory("--command", TREE_JOB, "--interval", "60")
    async with running(service) as (events, status):
        run_id = status["currentRun"]["runId"]
        assert len(processes_of(run_id)) >= 3, "the shell and its two sleeps"
        code, answer = service.post_json("/api/snapshot/cancel", {"reason": "wrong data"})
        assert (code, answer["runId"]) == (202, run_id)
        done = await next_status(events, lambda d: ended(d, run_id))
    assert (done["lastRun"]["status"], done["lastRun"]["error"]) == ("cancelled", "wrong data")
    assert done["progress"]["status"] == "cancelled"
    assert processes_of(run_id) == [], "no child or grandchild is left behind"
    service.wait_for_log(f"run {run_id}: wrong data; stopping the job")


async def test_cancel_when_nothing_runs_is_409_and_the_cli_says_so(service_factory: Any) -> None:
    service = service_factory("--command", "true", "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
        async with session.post(service.url + "/api/snapshot/cancel") as response:
            assert response.status == 409
            assert await response.json() == {"success": False, "message": "No snapshot is running"}
    cli = subprocess.run(
        [PYTHON, "-m", "orchestrator", "cancel", "--url", service.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (cli.returncode, cli.stdout.strip()) == (1, "Nothing to cancel: No snapshot is running")


async def test_timeout_ends_a_deaf_job_with_sigterm_then_sigkill(service_factory: Any) -> None:
    # 0.01 min = 0.6 s; the job ignores SIGTERM, so the 1.5 s grace runs out and SIGKILL follows.
    service = service_factory("--command", DEAF_JOB, "--interval", "60", "--timeout", "0.01", "--kill-grace", "1.5")
    async with running(service) as (events, status):
        run_id, job_pid = status["currentRun"]["runId"], int(status["progress"]["step"])
        stopping = await next_status(events, lambda d: d["stopping"] is not None)
        assert (stopping["stopping"], stopping["running"]) == ("timed out", True)
        # A cancel during the grace period changes nothing: the run is already being ended, for its reason.
        code, answer = service.post_json("/api/snapshot/cancel", {"reason": "too late"})
        assert (code, answer["message"]) == (202, f"Already stopping snapshot {run_id} (timed out)")
        done = await next_status(events, lambda d: ended(d, run_id))
    assert (done["lastRun"]["status"], done["lastRun"]["error"]) == ("error", "timed out")
    assert not alive(job_pid)
    for line in (
        f"run {run_id}: timed out (still running after 0.01 min); stopping the job",
        f"run {run_id}: sent SIGTERM to process group {job_pid}",
        f"run {run_id}: process group {job_pid} ignored SIGTERM for 1.5s; sent SIGKILL",
    ):
        service.wait_for_log(line)
    # The service goes on: the next trigger runs as usual.
    assert service.post_json("/api/snapshot/trigger")[0] == 202
    service.wait_for_log("(http)")


async def test_stall_ends_a_job_whose_progress_stops(service_factory: Any) -> None:
    service = service_factory("--command", QUIET_JOB, "--interval", "60", "--stall-timeout", "0.01")
    async with running(service) as (events, status):
        run_id, job_pid = status["currentRun"]["runId"], int(status["progress"]["step"])
        done = await next_status(events, lambda d: ended(d, run_id))
    assert (done["lastRun"]["status"], done["lastRun"]["error"]) == ("error", "stalled")
    assert not alive(job_pid)
    service.wait_for_log(f"run {run_id}: stalled (no progress for 0.01 min); stopping the job")


async def test_progress_the_job_writes_to_the_file_itself_keeps_it_from_stalling(service_factory: Any) -> None:
    # Reports every 0.1 s for 1.5 s through the progress file (not stdout); the stall limit is 0.6 s.
    writer = job_command(
        "import time\n"
        "from orchestrator.jobkit import report_progress\n"
        "for i in range(15):\n"
        "    report_progress(i * 6, f'step {i}')\n"
        "    time.sleep(0.1)\n"
    )
    service = service_factory("--command", writer, "--interval", "60", "--stall-timeout", "0.01")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        done = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
    assert done["lastRun"]["status"] == "completed", done["lastRun"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_service_signal_mid_run_cancels_the_run_keeps_the_queue_and_exits_zero(
    service_factory: Any, sig: signal.Signals
) -> None:
    service = service_factory("--command", DEAF_JOB, "--interval", "60", "--kill-grace", "1")
    async with running(service) as (events, status):
        run_id, job_pid = status["currentRun"]["runId"], int(status["progress"]["step"])
        assert service.post_json("/api/snapshot/trigger", {"reason": "queued before the stop"})[0] == 202
        await next_status(events, lambda d: d["pendingTriggers"] == 1)
        started = time.monotonic()
        assert service.stop(sig) == 0
        took = time.monotonic() - started
        with pytest.raises(StopAsyncIteration):
            await anext(events)  # the event stream was closed cleanly, not left hanging
    assert took < 1 + 5, f"the grace period (1 s) plus a few seconds, took {took:.1f}s"
    assert not alive(job_pid), "the job ignored SIGTERM and was killed after the grace"
    state = saved_state(service.data_dir)
    assert (state["lastRun"]["runId"], state["lastRun"]["status"]) == (run_id, "cancelled")
    assert state["lastRun"]["error"] == "service stopped"
    assert json.loads((service.data_dir / "snapshot_progress.json").read_text())["status"] == "cancelled"

    again = service_factory("--command", sample_command(0.1), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, again.url + "/api/snapshot/events")
        follow_up = await next_status(events, lambda d: d["lastRun"]["runId"] != run_id and not d["running"])
    assert (follow_up["lastRun"]["trigger"], follow_up["lastRun"]["reason"]) == ("http", "queued before the stop")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_second_stop_signal_does_not_cut_the_job_stop_short(service_factory: Any, sig: signal.Signals) -> None:
    """Ctrl-C pressed twice: the second must not abort the shutdown between the job's SIGTERM and SIGKILL."""
    service = service_factory("--command", DEAF_JOB, "--interval", "60", "--kill-grace", "1")
    async with running(service) as (_, status):
        run_id, job_pid = status["currentRun"]["runId"], int(status["progress"]["step"])
        service.proc.send_signal(sig)
        service.wait_for_log(f"run {run_id}: sent SIGTERM to process group {job_pid}")
        service.proc.send_signal(sig)
        assert service.proc.wait(timeout=20) == 0
    assert not alive(job_pid), "the job that ignores SIGTERM was still killed after the grace"
    assert service.logs().count("already stopping: the job gets up to 1s to end") == 1
    state = saved_state(service.data_dir)
    assert (state["lastRun"]["runId"], state["lastRun"]["status"], state["current"]) == (run_id, "cancelled", None)


async def test_kill_9_mid_run_is_recorded_and_the_orphaned_job_is_stopped(service_factory: Any) -> None:
    service = service_factory("--command", QUIET_JOB, "--interval", "60")
    async with running(service) as (_, status):
        run_id, job_pid = status["currentRun"]["runId"], int(status["progress"]["step"])
        service.stop(signal.SIGKILL)
    assert alive(job_pid), "the job lives on in its own session: the service could not stop it"

    # The orphaned job does not hold the instance lock (it is close-on-exec), so this start succeeds.
    again = service_factory("--command", sample_command(0.1), "--interval", "60")
    assert not alive(job_pid), "stopped before the new service answered anything"
    again.wait_for_log("outlived the service")
    interrupted = again.get_json(f"/api/snapshot/runs/{run_id}")
    assert (interrupted["status"], interrupted["error"]) == ("error", "interrupted: service stopped")
    # Its triggers were promised a run: it runs again, once, and says so.
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, again.url + "/api/snapshot/events")
        doc = await next_status(events, lambda d: ended(d, d["lastRun"]["runId"]) and d["lastRun"]["retryOf"] == run_id)
    retry = doc["lastRun"]
    assert (retry["status"], retry["trigger"]) == ("completed", "startup")
    assert retry["reason"] == f"retry of {run_id}; scheduled"
    assert doc["nextRunAt"] > doc["serverTime"], "the schedule carries on from the retry: nothing is due"
    assert [run["runId"] for run in again.get_json("/api/snapshot/runs")["runs"]] == [retry["runId"], run_id]


def wait_for_exit(pid: int, timeout: float = 10) -> None:
    """Wait (bounded) for a process that is not our child to end: a pidfd becomes readable when it does."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        assert readable, f"process {pid} still runs after {timeout}s"
    finally:
        os.close(pidfd)


async def test_after_kill_9_a_leftover_group_is_stopped_even_when_its_leader_has_exited(
    service_factory: Any,
) -> None:
    """The job's leader is gone (say a wrapper shell died of SIGPIPE once the service's end of its stdout
    closed) while its child works on: the next start must still find and stop what is left of the group."""
    wrapper = "sh -c 'sleep 1000 & echo \"PROGRESS 5 $!\"; wait'"
    service = service_factory("--command", wrapper, "--interval", "60")
    async with running(service) as (_, status):
        run_id, child = status["currentRun"]["runId"], int(status["progress"]["step"])
        leader = status["currentRun"]["pid"]
        service.stop(signal.SIGKILL)
    os.kill(leader, signal.SIGKILL)
    wait_for_exit(leader)
    assert alive(child) and processes_of(run_id) == [child], "only the child is left, in the old group"

    again = service_factory("--command", sample_command(0.1), "--interval", "60")
    assert not alive(child), "stopped before the new service answered anything"
    again.wait_for_log(f"run {run_id}: its job outlived the service (1 process: {child}); stopping it")


def test_a_second_service_on_the_same_data_folder_refuses_and_names_the_first(
    service_factory: Any, tmp_path: Path
) -> None:
    first = service_factory("--command", "true", "--interval", "60")
    second = subprocess.run(
        [PYTHON, "-m", "orchestrator", "serve", "--port", str(free_port()), "--data-dir", str(first.data_dir)],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 2
    assert f"is in use by snapshot-orchestrator pid {first.proc.pid}, {first.url}/" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr

    first.stop(signal.SIGKILL)  # a crash: the kernel drops the lock with the process
    third = service_factory("--command", "true", "--interval", "60", root=tmp_path)
    assert third.get_json("/health")["status"] == "ok"


async def test_a_trigger_file_during_the_shutdown_drain_starts_nothing_and_is_kept(service_factory: Any) -> None:
    """SIGTERM while a request is in flight: aiohttp waits for it, up to its shutdown timeout (5 s) here, as it
    would for a slow client. A trigger file dropped meanwhile must not start a run; it runs at the next start."""
    service = service_factory("--command", "true", "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as slow:
            head = "POST /api/snapshot/trigger HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
            head += "Content-Length: 99\r\n\r\n"
            slow.sendall(head.encode())
            # "100 Continue": the service is handling the request, in flight, waiting for a body that never comes.
            assert slow.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            service.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                async for _ in events:  # shutdown has begun once the service closes the event stream
                    pass
            (service.triggers_dir / "during-stop").write_text("dropped while stopping")
            assert service.proc.wait(timeout=20) == 0  # once the drain gives up on the slow request
    assert "started pid" not in service.logs().split("stopping: no new runs")[1], "nothing ran after the stop"
    # Kept for the next start either way: the file left in the folder, or taken and saved as pending.
    pending = [t.get("reason") for t in saved_state(service.data_dir)["pending"]]
    assert (service.triggers_dir / "during-stop").exists() != (pending == ["dropped while stopping"]), pending

    again = service_factory("--command", "true", "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, again.url + "/api/snapshot/events")
        done = await next_status(events, lambda d: d["lastRun"]["trigger"] == "file" and not d["running"])
    assert done["lastRun"]["reason"] == "dropped while stopping"


async def test_escape_bytes_from_the_job_reach_the_service_log_escaped(service_factory: Any) -> None:
    """A job's stderr is quoted in the service's own log (its error); raw, it would retitle the operator's
    terminal, clear it, or rewrite the line before it."""
    evil = job_command(
        "import sys\nsys.stderr.write('\\x1b]0;pwned\\x07\\x1b[2Jboom\\rFAKE: all good\\n')\nsys.exit(3)\n"
    )
    service = service_factory("--command", evil, "--interval", "60")
    service.wait_for_log("ended error")
    line = next(line for line in service.logs().splitlines() if "ended error" in line)
    assert line.endswith("exited with code 3: \\x1b]0;pwned\\x07\\x1b[2Jboom\\x0dFAKE: all good"), line
    assert not [ch for ch in service.logs() if ch in "\x1b\x07\r"], "no control character reaches the log raw"


async def test_the_job_does_not_inherit_the_services_secrets(service_factory: Any) -> None:
    """A job that prints its environment (or dies with a dump of it) publishes it in its log, which anyone who
    may read the API reads: the service's own secrets stay out of it. Everything else is inherited."""
    secrets = {
        "SNAPSHOT_TOKEN": "token-aaaa",
        "SNAPSHOT_TOKEN_FOR_READS": "1",
        "SNAPSHOT_NOTIFY_SECRET": "hmac-bbbb",
        "SNAPSHOT_NOTIFY_URLS": "https://hooks.example.com/cccc",
        "SNAPSHOT_SMTP_PASSWORD": "smtp-dddd",
        "SNAPSHOT_SMTP_HOST": "127.0.0.1",  # (so that the password is one the service takes)
        "SNAPSHOT_SMTP_TO": "ops@example.com",
        "SNAPSHOT_SMTP_USER": "ops",
    }
    printer = job_command("import os\nfor k, v in sorted(os.environ.items()): print(f'{k}={v}')\nprint('END')\n")
    service = service_factory(
        "--command", printer, "--interval", "60", "--notify-on", "failure", env={**secrets, "GITHUB_TOKEN": "gh-eeee"}
    )
    service.wait_for_log("completed in")
    [log_file] = (service.data_dir / "logs").glob("*.log")
    written = FileChanges(log_file)  # its lines land on a worker thread, a moment after the run's end
    try:
        await written.until(lambda: " out END" in log_file.read_text(), "the job's last line in its log")
    finally:
        written.close()
    printed = log_file.read_text()
    assert "GITHUB_TOKEN=gh-eeee" in printed, "the job's own variables are inherited"
    assert "SNAPSHOT_RUN_ID=" in printed
    withheld = [name for name in secrets if name.rsplit("_", 1)[1] not in ("HOST", "TO", "USER")]
    assert not [secrets[name] for name in withheld if secrets[name] != "1" and secrets[name] in printed]
    assert not [name for name in withheld if f"{name}=" in printed]
