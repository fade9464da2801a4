"""Folders behind symlinks, and running out of file descriptors: real service processes, real sockets."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.support import free_port, job_command, next_status, sse_stream, start_service

pytestmark = pytest.mark.process

STEPPER = job_command(
    "import time\n"
    "from orchestrator.jobkit import report_progress\n"
    "for i in range(1, 4):\n"
    "    report_progress(i * 25, f'step {i}')\n"
    "    time.sleep(0.3)\n"
)
"""Reports three steps through the progress file (the path a watch on a symlinked data folder would miss)."""


async def test_symlinked_data_and_trigger_folders_are_watched_where_they_point(tmp_path: Path) -> None:
    """inotify does not follow a symlink it is asked to watch: a watch on ``data -> real-data`` heard nothing,
    so live progress froze (and a healthy job could be killed as stalled) and file triggers waited."""
    (tmp_path / "real-data").mkdir()
    (tmp_path / "real-triggers").mkdir()
    (tmp_path / "data").symlink_to(tmp_path / "real-data", target_is_directory=True)
    (tmp_path / "triggers").symlink_to(tmp_path / "real-triggers", target_is_directory=True)
    service = start_service(tmp_path, "--command", STEPPER, "--interval", "60", "--stall-timeout", "0.1")
    try:
        service.wait_ready()
        async with aiohttp.ClientSession() as session:
            events = sse_stream(session, service.url + "/api/snapshot/events")
            for step in ("step 1", "step 2", "step 3"):  # live, each one, from the job's own writes
                await next_status(events, lambda d, step=step: d["progress"]["step"] == step)
            first = await next_status(events, lambda d: d["lastRun"] is not None and not d["running"])
            assert first["lastRun"]["status"] == "completed"
            (tmp_path / "triggers" / "run-now").touch()
            again = await next_status(events, lambda d: d["running"] and d["currentRun"]["trigger"] == "file")
            assert again["currentRun"]["runId"] != first["lastRun"]["runId"]
    finally:
        assert service.stop() == 0


def request_from(source: str, port: int, method: str, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request(method, path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.skipif(shutil.which("prlimit") is None and os.environ.get("CI") != "true", reason="needs prlimit")
async def test_a_connection_flood_past_the_descriptor_limit_is_closed_at_the_door_and_survived(tmp_path: Path) -> None:
    """A connection flood past the descriptor limit (prlimit caps the hard limit, so the service cannot raise
    it). Once, accepts failed with EMFILE (asyncio logged a traceback per failed accept, tens of thousands; then
    one line a minute). Now connections over the caps (32 from one address, 64 in all, under 128 descriptors)
    are closed as they are accepted, logged once: the service never runs out, answers, and runs triggers."""
    service = start_service(
        tmp_path, "--command", "true", "--interval", "60", prefix=("prlimit", "--nofile=128:128"), port=free_port()
    )
    flood: list[socket.socket] = []
    try:
        service.wait_ready()
        try:
            for _ in range(200):  # 128 descriptors, and the backlog of 128 behind them
                flood.append(socket.create_connection(("127.0.0.1", service.port), timeout=2))
            service.wait_for_log("holds 32 connections, the most one address may")
            # Another address gets in meanwhile, and its trigger runs.
            assert request_from("127.0.0.2", service.port, "GET", "/health") == 200
            assert request_from("127.0.0.2", service.port, "POST", "/api/snapshot/trigger") == 202
            service.wait_for_log("(http)")
        finally:
            for sock in flood:
                with contextlib.suppress(OSError):
                    sock.close()
    finally:
        assert service.stop() == 0  # whatever failed above: no service is left running
    log = service.logs()
    assert log.count("the most one address may") == 1, log[-3000:]
    assert "cannot accept connections" not in log, log[-3000:]
    assert "Traceback" not in log and "out of system resource\n" not in log


@pytest.mark.skipif(shutil.which("prlimit") is None and os.environ.get("CI") != "true", reason="needs prlimit")
async def test_the_stream_caps_follow_the_descriptor_limit_the_service_raised_itself(tmp_path: Path) -> None:
    """A soft limit of 100 under a hard one of 400 (a shell's 1024 under 4096 is the same): the service raises
    the soft limit at start, and the event streams it allows are derived from what it has then (201), not from
    what it started with (21: the settings were made before the limit was raised)."""
    service = start_service(
        tmp_path,
        "--command",
        "true",
        "--interval",
        "60",
        "--streams-per-client",
        "0",
        "--connections-per-client",
        "0",
        prefix=("prlimit", "--nofile=100:400"),
    )
    try:
        service.wait_ready()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            streams = [sse_stream(session, f"{service.url}/api/snapshot/events") for _ in range(60)]
            for stream in streams:
                await next_status(stream, lambda d: True)  # the 22nd and beyond are let in too (201, not 503)
            for stream in streams:
                await stream.aclose()
    finally:
        assert service.stop() == 0
