"""A real service process for ``bench/jobs.py`` (``python -m orchestrator serve --jobs FILE``, this checkout first
on ``PYTHONPATH``) whose output lines are kept with their arrival time, and what ``/proc`` says of it: CPU time,
RSS, threads, and each thread's context switches (its wakeups).

The service's own folders (``svc/data``, ``svc/triggers``) sit in a folder of their own: the service also
watches their parent, so the benchmark's files (the jobs file, the stop file) live elsewhere (``ctl/``), and its
log is kept in memory, not written next to them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
THREAD_NAMES = Path(__file__).resolve().parent / "threadnames"
"""A ``sitecustomize`` that gives each Python thread its name in ``/proc`` (Python 3.11 leaves them all ``python``)."""
HUP_SHIM = Path(__file__).resolve().parent / "jobs_hup.py"
WAIT = 120.0
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """The service and its output: ``lines`` is every line with its ``perf_counter`` arrival time."""

    def __init__(
        self,
        root: Path,
        *,
        names_threads: bool = False,
        hup_shim: bool = False,
        argv: Sequence[str] | None = None,
        port: int | None = None,
        code: Path = REPO,
    ) -> None:
        """``argv`` (after the interpreter) replaces ``-m orchestrator serve --jobs ...`` (it then names its own
        ``port``); ``code`` is the checkout put first on ``PYTHONPATH``."""
        self.svc, self.ctl = root / "svc", root / "ctl"
        self.ctl.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.lines: list[tuple[float, str]] = []
        self._arrived = threading.Condition()
        paths = [str(code), *([str(THREAD_NAMES)] if names_threads else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "BENCH_STOP": str(self.ctl / "stop")}
        entry = [str(HUP_SHIM)] if hup_shim else ["-m", "orchestrator"]
        args = [
            *("serve", "--port", str(self.port), "--jobs", str(self.ctl / "jobs.toml"), "--log-level", "info"),
            *("--data-dir", str(self.svc / "data"), "--triggers-dir", str(self.svc / "triggers")),
        ]
        command = [sys.executable, *(argv if argv is not None else [*entry, *args])]
        self.spawned = time.perf_counter()
        self.proc = subprocess.Popen(command, cwd=self.ctl, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            arrived = time.perf_counter()
            with self._arrived:
                self.lines.append((arrived, raw.decode(errors="replace").rstrip("\n")))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def wait_lines(self, *texts: str, count: int = 1, since: int = 0, timeout: float = WAIT) -> float:
        """The arrival time of the ``count``-th line from line ``since`` on that contains one of ``texts``."""

        def found() -> list[float]:
            return [t for t, line in self.lines[since:] if any(text in line for text in texts)]

        with self._arrived:
            ok = self._arrived.wait_for(lambda: len(found()) >= count or self.proc.poll() is not None, timeout)
            hits = found()
        if not ok or len(hits) < count:
            raise RuntimeError(f"the service did not log {count} x {' or '.join(map(repr, texts))}\n{self.tail()}")
        return hits[count - 1]

    def tail(self, count: int = 30) -> str:
        return "--- service output (tail) ---\n" + "\n".join(line for _, line in self.lines[-count:])

    def get(self, path: str) -> int:
        """One GET on a new connection (it waits in the listen backlog until the app answers); its status."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Prober:
    """Sequential GETs on one keep-alive connection; each probe's time (ms) for a list of paths."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)

    def status(self, path: str) -> int:
        self._connection.request("GET", path)
        response = self._connection.getresponse()
        response.read()
        return response.status

    def json(self, path: str) -> Any:
        self._connection.request("GET", path)
        return json.loads(self._connection.getresponse().read())

    def probe(self, paths: Sequence[str]) -> float:
        t0 = time.perf_counter()
        for path in paths:
            if (status := self.status(path)) != 200:
                raise RuntimeError(f"GET {path}: {status}")
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        self._connection.close()


# ---------------------------------------------------------------------------------------------------- /proc
def cpu_seconds(pid: int) -> float:
    """User + system time of the process, all its threads (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_field(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def rss_mib(pid: int) -> float:
    return int(status_field(pid, "VmRSS").split()[0]) / 1024


def threads(pid: int) -> int:
    return int(status_field(pid, "Threads"))


def catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for ``sig`` (``SigCgt`` in ``/proc/PID/status``)."""
    return bool(int(status_field(pid, "SigCgt"), 16) >> (sig - 1) & 1)


@dataclass(frozen=True)
class ThreadSample:
    name: str
    switches: int
    """Voluntary + involuntary context switches so far: each wakeup of the thread is one."""


def sample_threads(pid: int) -> dict[int, ThreadSample]:
    """Every thread of ``pid`` now, by thread id (a thread that ends while it is read is left out)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            lines = (task / "status").read_text().splitlines()
            switches = sum(int(line.split(":")[1]) for line in lines if line.split(":")[0].endswith("ctxt_switches"))
            out[int(task.name)] = ThreadSample((task / "comm").read_text().strip(), switches)
    return out


def wakeups(before: dict[int, ThreadSample], after: dict[int, ThreadSample]) -> dict[int, tuple[str, int]]:
    """Each thread's wakeups between two samples (a thread born between them: all of its own)."""
    return {tid: (s.name, s.switches - (before[tid].switches if tid in before else 0)) for tid, s in after.items()}
