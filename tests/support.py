"""Test support: a real service process, a real SSE client, and bounded waits on real events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str, timeout: float = 100) -> str:
    """Run ``bench/<script>`` with ``args`` (a tiny size) to its end; what it printed. It must succeed: a bench
    that cannot run fails its smoke test, whatever it measured."""
    done = subprocess.run(
        [PYTHON, f"bench/{script}", *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def saved_states(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every job's state as the state file in ``data_dir`` holds it, with its journal's records replayed."""
    from orchestrator.store.statefile import STATE_FILE_NAME, read_state_file

    return read_state_file(data_dir / STATE_FILE_NAME, "snapshot")[0]


def saved_state(data_dir: Path, job: str = "snapshot") -> dict[str, Any]:
    """``job``'s state as the state file in ``data_dir`` holds it (the file holds every job's), with its journal's
    records replayed."""
    from orchestrator.store.statefile import STATE_FILE_NAME, read_state_file

    if (data_dir / STATE_FILE_NAME).exists():
        document = json.loads((data_dir / STATE_FILE_NAME).read_text())
        assert document["version"] == 2, document
    state: dict[str, Any] = read_state_file(data_dir / STATE_FILE_NAME, job)[0][job]
    return state


def job_command(script: str) -> str:
    """A ``--command`` that runs a small inline Python job."""
    return f"{shlex.quote(PYTHON)} -c {shlex.quote(script)}"


STEPS_JOB = """
import json, time
def report(**fields):
    print("PROGRESS " + json.dumps(fields), flush=True)
report(percent=10, step="Connecting to GitHub")
time.sleep(0.05)
for n in range(1, 4):
    report(percent=10 + 25 * n, step="Fetching GitHub PRs", detail=f"repo {n}/3: octo/r{n}", done=n, total=3)
    time.sleep(0.05)
report(percent=95, step="Writing the snapshot")
"""
"""A job that reports its steps in the ``PROGRESS`` line's JSON form: three steps, the second with details and
counts (run it with :func:`job_command`)."""
STEPS_JOB_STEPS = ["Starting...", "Connecting to GitHub", "Fetching GitHub PRs", "Writing the snapshot"]
"""The steps a run of :data:`STEPS_JOB` records: the service's own first, then the job's."""


def sample_command(duration: float) -> str:
    return f"{PYTHON} -m orchestrator.sample_job --duration {duration}"


@dataclass
class ServiceProcess:
    """``python -m orchestrator serve`` as a real subprocess, on a free port, in a temp folder."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    listening: threading.Event
    log_lines: LogLines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def triggers_dir(self) -> Path:
        return self.root / "triggers"

    def get_json(self, path: str, timeout: float = 10) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.load(response)

    def post_json(self, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(
            self.url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)

    def wait_ready(self, timeout: float = 15) -> None:
        """Wait for the "listening" log line: the socket is bound and listening by then, so one request
        simply waits in the backlog until the app answers."""
        if not self.listening.wait(timeout):
            raise AssertionError(f"service did not log 'listening' within {timeout}s\n{self.logs()}")
        try:
            self.get_json("/health", timeout=timeout)
        except Exception as exc:
            raise AssertionError(f"service did not come up: {exc}\n{self.logs()}") from exc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"service did not stop within {timeout}s\n{self.logs()}") from None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 10, count: int = 1) -> None:
        """Wait (bounded) until the service has logged ``count`` lines containing ``text``."""
        if not self.log_lines.wait_for(text, timeout, count):
            raise AssertionError(f"service did not log {text!r} {count} times within {timeout}s\n{self.logs()}")


class LogLines:
    """The service's output lines as they arrive, with a wait for a given one."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._arrived = threading.Condition()

    def add(self, line: str) -> None:
        with self._arrived:
            self._lines.append(line)
            self._arrived.notify_all()

    def wait_for(self, text: str, timeout: float, count: int = 1) -> bool:
        """Whether ``count`` lines containing ``text`` arrived (so far, or within ``timeout``)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: sum(text in line for line in self._lines) >= count, timeout)


def start_service(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    prefix: tuple[str, ...] = (),
) -> ServiceProcess:
    """``prefix``: a command the service runs under, e.g. ``("prlimit", "--nofile=256")``."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = root / f"service-{port}.log"
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [
            *prefix,
            PYTHON,
            "-m",
            "orchestrator",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(root / "data"),
            "--triggers-dir",
            str(root / "triggers"),
            *args,
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    listening = threading.Event()
    lines = LogLines()
    threading.Thread(target=_copy_log, args=(proc, log_path, listening, lines), daemon=True).start()
    return ServiceProcess(root=root, port=port, proc=proc, log_path=log_path, listening=listening, log_lines=lines)


def _copy_log(proc: subprocess.Popen[bytes], log_path: Path, listening: threading.Event, lines: LogLines) -> None:
    assert proc.stdout is not None
    with proc.stdout, log_path.open("ab", buffering=0) as log:
        for line in proc.stdout:  # ends when the process and its children close the pipe
            log.write(line)
            lines.add(line.decode(errors="replace"))
            if b"listening on" in line:
                listening.set()


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


async def sse_stream(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str] | None = None,
    on_comment: Callable[[str], None] | None = None,
) -> AsyncIterator[SSEEvent]:
    """A minimal but real SSE client over aiohttp: yields each dispatched event; hands comment lines to
    ``on_comment``."""
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
        assert resp.status == 200, resp.status
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        event, data, event_id = "message", [], None
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    yield SSEEvent(event, "\n".join(data), event_id)
                event, data = "message", []
                continue
            if line.startswith(":"):
                if on_comment is not None:
                    on_comment(line)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


async def next_status(
    events: AsyncIterator[SSEEvent], predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    """Read ``status`` events until one satisfies ``predicate``; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        async for event in events:
            if event.event == "status":
                document: dict[str, Any] = event.json()
                if predicate(document):
                    return document
    raise AssertionError("event stream ended before the expected status")


@contextlib.contextmanager
def descriptors(needed: int) -> Iterator[None]:
    """At least ``needed`` open files for this process, and for a service it starts meanwhile (which inherits
    the limit); the soft limit is put back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    assert hard >= needed, f"RLIMIT_NOFILE hard limit {hard} < {needed}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """The process's umask set to ``mask`` for the block (what a shell or Docker would start the service with)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
