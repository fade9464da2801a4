"""``trigger --wait`` and ``status``: the CLI run as a real process against a real service, and the logic that
finds the run a trigger caused, as a table."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from orchestrator.cli.follow import (
    GIVE_UP_AFTER_SECONDS,
    BarLayout,
    Display,
    Exit,
    Follower,
    Lost,
    bar_layout,
    sight,
    summary,
)
from orchestrator.core.events import iso
from tests.fakes import T0
from tests.faults.harness import FifoJob
from tests.support import PYTHON, ServiceProcess, free_port, job_command, next_status, sse_stream
from tests.tinyhttp import tiny_server

WAIT = 20.0


def at(seconds: float) -> str | None:
    return iso(T0 + timedelta(seconds=seconds))


def run(run_id: str, started: float, status: str = "running") -> dict[str, Any]:
    return {"runId": run_id, "startedAt": at(started), "status": status}


def test_a_queued_trigger_is_never_the_run_that_started_in_its_millisecond() -> None:
    tie = {"currentRun": run("busy", 0), "lastRun": None}
    assert sight(tie, T0, None, queued=True).run_id is None, "ours is the follow-up"
    assert sight(tie, T0, None).run_id == "busy", "not queued: the run started for it"
    follow_up = {"currentRun": run("ours", 0.001), "lastRun": {**run("busy", 0), "status": "completed"}}
    assert sight(follow_up, T0, None, queued=True).running == follow_up["currentRun"]


@pytest.mark.parametrize(
    ("document", "known", "expected"),
    [
        # Idle, nothing started since the trigger yet: still waiting.
        ({"currentRun": None, "lastRun": run("old", -60, "completed")}, None, (None, None, None, False)),
        # A run that was going on when we triggered is not ours: ours is the follow-up.
        ({"currentRun": run("busy", -5), "lastRun": None}, None, (None, None, None, False)),
        # The run started at (or after) the trigger is ours.
        ({"currentRun": run("ours", 0), "lastRun": None}, None, ("ours", "ours", None, False)),
        # It started and ended between two documents (a quick job).
        ({"currentRun": None, "lastRun": run("ours", 1, "error")}, None, ("ours", None, "ours", False)),
        # Ours ended and the next (a timer run) started before we looked: the earlier one is ours.
        ({"currentRun": run("next", 9), "lastRun": run("ours", 1, "completed")}, None, ("ours", None, "ours", False)),
        # Once known, followed by id.
        ({"currentRun": run("ours", 0), "lastRun": run("old", -9, "error")}, "ours", ("ours", "ours", None, False)),
        ({"currentRun": None, "lastRun": run("ours", 0, "completed")}, "ours", ("ours", None, "ours", False)),
        # Ours ended while we were away and another run ended since: look it up.
        ({"currentRun": None, "lastRun": run("later", 50, "completed")}, "ours", ("ours", None, None, True)),
    ],
)
def test_the_run_a_trigger_caused_is_the_first_to_start_after_it(
    document: dict[str, Any], known: str | None, expected: tuple[str | None, str | None, str | None, bool]
) -> None:
    seen = sight(document, T0, known)
    running = seen.running["runId"] if seen.running else None
    finished = seen.finished["runId"] if seen.finished else None
    assert (seen.run_id, running, finished, seen.missed) == expected


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_and_a_log_gets_one_line_per_step() -> None:
    document = {"progress": {"progress": 45, "step": "Fetching PRs (5/15)"}, "serverTime": at(75)}
    document["eta"] = {"secondsLeft": 130, "finishAt": at(205), "basis": "progress"}
    current = run("ours", 0)
    terminal = Terminal()
    bar = Display(terminal)
    bar.show(document, current)
    bar.close()
    drawn = terminal.getvalue()
    assert "\r" in drawn and "45%" in drawn and "Fetching PRs (5/15)" in drawn
    assert "Fetching PRs (5/15) (1:15 elapsed, about 2:10 left)" in drawn, "no stray ', ' before the times"

    log = io.StringIO()
    lines = Display(log)
    for _ in range(3):
        lines.show(document, current)  # the same step again is no news
    lines.show({**document, "progress": {"progress": 60, "step": "Writing"}}, current)
    assert log.getvalue().splitlines() == [
        " 45% Fetching PRs (5/15) (1:15 elapsed, about 2:10 left)",
        " 60% Writing (1:15 elapsed, about 2:10 left)",
    ]


STEP = "Fetching PRs (5/15)"
TIMES = "1:15 elapsed, about 2:10 left"


@pytest.mark.parametrize(
    ("columns", "step", "timing", "expected"),
    [
        # Wide: the full bar, the step and the times, with nothing between the step and the times but a space.
        (120, STEP, TIMES, BarLayout(24, f"{STEP} ({TIMES})")),
        # 80 columns: the bar shrinks so that the line ends in the last column but one.
        (80, STEP, TIMES, BarLayout(21, f"{STEP} ({TIMES})")),
        (65, STEP, TIMES, BarLayout(6, f"{STEP} ({TIMES})")),
        # Narrower than that, a bar is no use: it goes, and the step keeps its room...
        (64, STEP, TIMES, BarLayout(0, f"{STEP} ({TIMES})")),
        # ...then the step is shortened...
        (56, STEP, TIMES, BarLayout(0, f"Fetching PRs (5/1\u2026 ({TIMES})")),
        (50, STEP, TIMES, BarLayout(0, f"Fetching PR\u2026 ({TIMES})")),
        (40, STEP, TIMES, BarLayout(0, f"F\u2026 ({TIMES})")),
        (38, STEP, TIMES, BarLayout(0, f"({TIMES})")),
        # ...and the times are cut only when nothing else is left.
        (30, STEP, TIMES, BarLayout(0, f"({TIMES[:-6]}")),
        (1, STEP, TIMES, BarLayout(0, "")),
        # No step, no estimate: only the elapsed time.
        (50, "", "0:03 elapsed", BarLayout(24, "(0:03 elapsed)")),
        (20, "", "0:03 elapsed", BarLayout(0, "(0:03 elapsed)")),
    ],
)
def test_a_narrow_terminal_loses_the_bar_then_the_step_before_the_times(
    columns: int, step: str, timing: str, expected: BarLayout
) -> None:
    layout = bar_layout(columns, step, timing)
    assert layout == expected
    line = (f"{'#' * layout.bar_width}| " if layout.bar_width else "") + f"100% {layout.text}"
    # Never in the last column (some terminals wrap there); the percent alone is always drawn.
    assert len(line) <= max(len("100% "), columns - 1)


def test_the_summary_says_how_the_run_ended() -> None:
    done = {"runId": "r1", "status": "completed", "durationSeconds": 3725.2}
    assert summary(done) == "Run r1 completed in 1:02:05"
    failed = {"runId": "r2", "status": "error", "durationSeconds": 12, "error": "exit 3\nmore", "step": "Fetching"}
    assert summary(failed) == "Run r2 error in 0:12: exit 3 (last step: Fetching)"


# ---------------------------------------------------------------------------------- a real service and CLI
@pytest.fixture
def fifo_job(tmp_path: Path) -> Iterator[FifoJob]:
    job = FifoJob(tmp_path / "job")
    yield job
    job.close()


def cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "orchestrator", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )


async def read_until(stream: IO[str], wanted: str, seen: list[str]) -> None:
    """Read ``stream`` line by line (in a thread: the pipe blocks) until a line contains ``wanted``."""

    def read() -> None:
        while line := stream.readline():
            seen.append(line)
            if wanted in line:
                return
        raise AssertionError(f"ended before {wanted!r}: {seen}")

    async with asyncio.timeout(WAIT):
        await asyncio.to_thread(read)


async def idle_after_first_run(service: ServiceProcess, job: FifoJob) -> None:
    """The service's first start runs the job at once: let that run end before the tests trigger theirs."""
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(events, lambda doc: doc["running"])
        job.finish(0)
        await next_status(events, lambda doc: not doc["running"] and doc["lastRun"] is not None)


@pytest.mark.process
async def test_trigger_wait_follows_the_run_it_caused_and_exits_by_its_outcome(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob, tmp_path: Path
) -> None:
    service = service_factory("--command", fifo_job.command, "--interval", "600")
    await idle_after_first_run(service, fifo_job)

    waiting = cli("trigger", "--wait", "--reason", "fresh data please", "--url", service.url, cwd=tmp_path)
    seen: list[str] = []
    try:
        assert waiting.stderr is not None
        await read_until(waiting.stderr, "Snapshot triggered", seen)
        fifo_job.send("PROGRESS 40 Fetching PRs (6/15)")
        await read_until(waiting.stderr, "40% Fetching PRs (6/15)", seen)
        fifo_job.finish(0)
        out, err = await asyncio.to_thread(waiting.communicate, timeout=WAIT)
    finally:
        waiting.kill()
    assert waiting.returncode == Exit.COMPLETED, (seen, err)
    assert out.startswith("Run ") and " completed in " in out, out
    runs = service.get_json("/api/snapshot/runs")["runs"]
    assert runs[0]["status"] == "completed" and runs[0]["reason"] == "fresh data please"
    assert runs[0]["runId"] in out

    # A failing run: exit 1, and the summary says why.
    failing = cli("trigger", "--wait", "--url", service.url, cwd=tmp_path)
    try:
        assert failing.stderr is not None
        await read_until(failing.stderr, "Snapshot triggered", seen)
        fifo_job.finish(3)
        out, err = await asyncio.to_thread(failing.communicate, timeout=WAIT)
    finally:
        failing.kill()
    assert failing.returncode == Exit.FAILED, err
    assert " error in " in out and "exit" in out, out


def cli_on_terminal(*args: str, cwd: Path, columns: int) -> tuple[subprocess.Popen[str], int]:
    """The CLI with its stderr on a pseudo-terminal ``columns`` wide (the size the kernel reports, not
    ``COLUMNS``), and the pty's master end to read what it draws."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    try:
        proc = subprocess.Popen(
            [PYTHON, "-m", "orchestrator", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            env=env,
        )
    finally:
        os.close(slave)
    return proc, master


def read_terminal(master: int, until: Callable[[str], bool], seen: list[str]) -> None:
    """Read what a program draws on the pty ``master`` into ``seen`` until ``until`` holds for all of it, or
    the program has closed its end (EIO)."""
    deadline = time.monotonic() + WAIT
    while not until("".join(seen)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the terminal never showed it: {''.join(seen)!r}")
        ready, _, _ = select.select([master], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every process holding the slave side has closed it
            return
        if not chunk:
            return
        seen.append(chunk.decode(errors="replace"))


@pytest.mark.process
async def test_trigger_wait_on_a_real_terminal_keeps_the_times_at_50_and_80_columns(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob, tmp_path: Path
) -> None:
    service = service_factory("--command", fifo_job.command, "--interval", "600")
    await idle_after_first_run(service, fifo_job)
    for columns in (50, 80):
        waiting, master = cli_on_terminal("trigger", "--wait", "--url", service.url, cwd=tmp_path, columns=columns)
        seen: list[str] = []
        try:
            await asyncio.to_thread(read_terminal, master, lambda drawn: "Snapshot triggered" in drawn, seen)
            fifo_job.send("PROGRESS 40 Fetching PRs (6/15)")
            await asyncio.to_thread(read_terminal, master, lambda drawn: " 40% " in drawn, seen)
            fifo_job.finish(0)
            out, _ = await asyncio.to_thread(waiting.communicate, timeout=WAIT)
            await asyncio.to_thread(read_terminal, master, lambda drawn: False, seen)  # the rest, to its end
        finally:
            waiting.kill()
            os.close(master)
        assert waiting.returncode == Exit.COMPLETED, (seen, out)
        frames = [
            frame for frame in "".join(seen).replace("\r\n", "\n").replace("\n", "\r").split("\r") if "%" in frame
        ]
        assert frames, seen
        for frame in frames:
            # tqdm pads a redraw shorter than the frame before it with spaces
            assert " elapsed" in frame and frame.rstrip().endswith(")"), (columns, frame)
            assert ", (" not in frame, (columns, frame)
            assert len(frame) < columns, (columns, frame)
        assert any("40% Fetching" in frame for frame in frames), frames
        if columns == 80:
            assert any("\u2588" in frame for frame in frames), f"a bar at 80 columns: {frames}"


@pytest.mark.process
async def test_trigger_wait_behind_a_running_run_follows_the_follow_up(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob, tmp_path: Path
) -> None:
    service = service_factory("--command", fifo_job.command, "--interval", "600")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        first = (await next_status(events, lambda doc: doc["running"]))["currentRun"]
        waiting = cli("trigger", "--wait", "--url", service.url, cwd=tmp_path)
        seen: list[str] = []
        try:
            assert waiting.stderr is not None
            await read_until(waiting.stderr, f"Queued behind run {first['runId']}", seen)
            fifo_job.finish(0)  # the first run ends well: that says nothing about ours
            follow_up = (
                await next_status(events, lambda d: d["running"] and d["currentRun"]["runId"] != first["runId"])
            )["currentRun"]
            fifo_job.finish(4)
            out, err = await asyncio.to_thread(waiting.communicate, timeout=WAIT)
        finally:
            waiting.kill()
    assert waiting.returncode == Exit.FAILED, (seen, err)
    assert follow_up["runId"] in out and first["runId"] not in out


@pytest.mark.process
def test_trigger_wait_without_a_service_says_so_and_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [PYTHON, "-m", "orchestrator", "trigger", "--wait", "--url", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == Exit.TROUBLE
    assert done.stderr.strip() == f"snapshot-orchestrator: error: cannot reach {url}: [Errno 111] Connection refused"
    assert not (tmp_path / "triggers").exists(), "no trigger file is left behind to run later"


@pytest.mark.process
async def test_status_lists_the_last_runs(
    service_factory: Callable[..., ServiceProcess], fifo_job: FifoJob, tmp_path: Path
) -> None:
    service = service_factory("--command", fifo_job.command, "--interval", "600")
    await idle_after_first_run(service, fifo_job)
    done = await asyncio.to_thread(run_status, service, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Source:   server {service.url}"
    assert lines[1].startswith("State:    idle, next snapshot in ")
    first = service.get_json("/api/snapshot/runs")["runs"][0]
    assert lines[-2] == "Last runs:"
    assert lines[-1].startswith(f"  {first['startedAt']}  completed ")
    assert lines[-1].endswith("  startup (scheduled)")

    # The service stops: the same runs come from the data folder, read-only.
    assert service.stop() == 0
    done = await asyncio.to_thread(run_status, service, tmp_path)
    lines = done.stdout.splitlines()
    assert lines[1] == "State:    service not running", done.stdout
    assert lines[-1].startswith(f"  {first['startedAt']}  completed "), done.stdout


def run_status(service: ServiceProcess, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "orchestrator", "status", "--url", service.url, "--data-dir", str(service.data_dir)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


@pytest.mark.process
def test_status_of_a_folder_that_never_ran_makes_no_history_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "orchestrator", "status", "--url", f"http://127.0.0.1:{free_port()}", "--data-dir", "data"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "State:    service not running" in done.stdout and "Last run: never" in done.stdout
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------------- reconnecting (a scripted opener)
class Connections:
    """Stands in for ``urlopen`` at the seam: each call is the next scripted connection, either an exception
    or a list of status documents sent as real SSE bytes and then closed. The clock moves only by pauses."""

    def __init__(self, *scripts: list[dict[str, Any]] | Exception) -> None:
        self.scripts = list(scripts)
        self.now = 0.0
        self.pauses: list[float] = []

    def open(self, request: Any, timeout: float) -> Any:
        script = self.scripts.pop(0) if self.scripts else OSError("connection refused")
        if isinstance(script, Exception):
            raise script
        body = "".join(f"event: status\ndata: {json.dumps(doc)}\n\n" for doc in script)
        return io.BytesIO(body.encode())

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def follower(connections: Connections, out: IO[str]) -> Follower:
    return Follower(
        "http://service",
        {},
        display=Display(out),
        open_url=connections.open,
        monotonic=lambda: connections.now,
        pause=connections.pause,
    )


def test_a_dropped_stream_is_reopened_and_the_run_followed_to_its_end() -> None:
    ours = run("ours", 1)
    running = {"currentRun": ours, "lastRun": None, "progress": {"progress": 30, "step": "Fetching"}}
    done = {"currentRun": None, "lastRun": {**ours, "status": "completed", "durationSeconds": 5}}
    connections = Connections([running], OSError("reset"), [running, done])
    out = io.StringIO()
    record = follower(connections, out).follow(T0)
    assert record["runId"] == "ours" and record["status"] == "completed"
    assert connections.pauses == [0.5, 1.0], "one pause per failed connection, growing"
    assert out.getvalue().count("reconnecting") == 1, out.getvalue()


def test_a_service_gone_for_good_ends_the_wait() -> None:
    connections = Connections([{"currentRun": run("ours", 1), "lastRun": None}])
    out = io.StringIO()
    with pytest.raises(Lost, match="for more than 300 s"):
        follower(connections, out).follow(T0)
    assert connections.now > GIVE_UP_AFTER_SECONDS
    assert max(connections.pauses) == 5.0
    assert out.getvalue().count("reconnecting") == 1, "one line while it is away, not one per try"


# ------------------------------------------------------------- text from outsiders never drives the terminal
EVIL_STEP = "\x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[31mred step"
EVIL_JOB = job_command(
    "import sys\n"
    f"print({'PROGRESS 30 ' + EVIL_STEP!r}, flush=True)\n"
    "sys.stderr.write('evil\\x1b[2K\\rFAKE: all good\\n')\n"
    "sys.exit(1)\n"
)


def test_the_progress_line_and_summary_show_escapes_instead_of_sending_them() -> None:
    document = {"progress": {"progress": 30, "step": EVIL_STEP}, "serverTime": at(5)}
    for out in (Terminal(), io.StringIO()):
        display = Display(out)
        display.waiting("Queued behind run \x1b[2Jr1")
        display.show(document, run("ours", 0))
        display.close()
        drawn = out.getvalue()
        assert "\x1b]" not in drawn and "\x07" not in drawn and "\x1b[2J" not in drawn and "\x1b[31m" not in drawn
        assert "\\x1b]0;PWNED-TITLE\\x07\\x1b[2J\\x1b[31mred step" in drawn and "run \\x1b[2Jr1" in drawn
    failed = {
        "runId": "r2",
        "status": "error",
        "durationSeconds": 1,
        "error": "exit 1: evil\x1b[2K\rFAKE",
        "step": "s\x07",
    }
    assert summary(failed) == "Run r2 error in 0:01: exit 1: evil\\x1b[2K\\x0dFAKE (last step: s\\x07)"


@pytest.mark.process
async def test_status_and_trigger_wait_print_a_hostile_job_s_escapes_visibly(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    service = service_factory("--command", EVIL_JOB, "--interval", "600")
    async with aiohttp.ClientSession() as session:  # the start-up run ends (error)
        events = sse_stream(session, service.url + "/api/snapshot/events")
        await next_status(events, lambda doc: not doc["running"] and doc["lastRun"] is not None)
    status = await asyncio.to_thread(run_status, service, tmp_path)
    waited = cli("trigger", "--wait", "--url", service.url, cwd=tmp_path)
    try:
        out, err = await asyncio.to_thread(waited.communicate, timeout=WAIT)
    finally:
        waited.kill()
    assert (status.returncode, waited.returncode) == (0, Exit.FAILED), (status.stderr, err)
    for text in (status.stdout, out, err):
        assert not any(ch in text for ch in "\x1b\x07\r"), repr(text)
    assert "evil\\x1b[2K\\x0dFAKE: all good" in status.stdout
    assert out.endswith(
        ": evil\\x1b[2K\\x0dFAKE: all good (last step: \\x1b]0;PWNED-TITLE\\x07\\x1b[2J\\x1b[31mred step)\n"
    )


# ------------------------------------------------------------------------ the event stream is not redirected
@pytest.mark.process
def test_trigger_wait_follows_no_redirect_of_the_event_stream(tmp_path: Path) -> None:
    # Before: the event stream's request followed a redirect to any host, with the bearer token.
    with tiny_server(lambda method, path: (200, {}, b"")) as target:
        here = f"http://127.0.0.1:{target.port}"

        def service(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
            if method == "POST" and path == "/api/snapshot/trigger":
                body = {"success": True, "message": "Snapshot triggered", "requestedAt": at(0), "queued": False}
                return 202, {"Content-Type": "application/json"}, json.dumps(body).encode()
            return 302, {"Location": here + path}, b""

        with tiny_server(service) as redirector:
            url = f"http://127.0.0.1:{redirector.port}"
            done = subprocess.run(
                [PYTHON, "-m", "orchestrator", "trigger", "--wait", "--url", url],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=WAIT,
                check=False,
                env={**os.environ, "SNAPSHOT_TOKEN": "s3cret-token"},
            )
        assert target.seen == [], "nothing reached the host the redirect named"
    assert [(s.method, s.path, s.authorization) for s in redirector.seen] == [
        ("POST", "/api/snapshot/trigger", "Bearer s3cret-token"),
        ("GET", "/api/snapshot/events", "Bearer s3cret-token"),
    ]
    assert done.returncode == Exit.TROUBLE, done
    assert done.stderr.splitlines()[-1] == (
        f"snapshot-orchestrator: error: {url}/api/snapshot/events answered 302, a redirect to "
        f"{here}/api/snapshot/events, which was not followed (the token is never sent elsewhere): the service "
        "never redirects, so --url (SNAPSHOT_URL) is wrong or a proxy is in the way"
    ), done.stderr
