"""The parts of the crash suites: real jobs that tell on overlaps, a killer that ``kill -9``s the service at a
chosen kind of instant, the load a round sends (trigger files, POSTs), and what the machine and the service
say afterwards (live processes of the service's runs, every run of a job). The lives of the service and the
promises checked across them: tests/faults/crashlives.py.

Every job runs :data:`JOB`, which journals its start and end (``start JOB RUN PID``, ``end JOB RUN``) in one
file. It holds a lock of its own job, inherited by a child of its own (a job tree stopped only in part keeps
holding it); and with ``slots`` it also holds one of that many slot locks, shared by every job: a run that finds
its job's lock taken journals ``overlap JOB RUN`` (two runs of one job at once), one that finds every slot taken
``crowd JOB RUN`` (more runs of different jobs at once than ``max-parallel``)."""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from orchestrator.store.journal import JOURNAL_FILE_NAME
from orchestrator.store.statefile import STATE_FILE_NAME, read_state_file
from tests.support import ServiceProcess, job_command

JOB = r"""
import fcntl, os, random, signal, subprocess, sys, time

def linger(signum, frame):  # its own clean-up when told to stop: it holds what it holds meanwhile
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # told again meanwhile: it goes on
    time.sleep(random.uniform(0, 0.3))
    os._exit(143)

signal.signal(signal.SIGTERM, linger)
job, run = os.environ["SNAPSHOT_JOB"], os.environ["SNAPSHOT_RUN_ID"]
journal, locks, longest, slots = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])

def note(text):
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{text}\n".encode())
    os.close(fd)

def take(name):
    fd = os.open(os.path.join(locks, name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None

held = [take(f"{job}.lock")]
if held[0] is None:
    note(f"overlap {job} {run}")  # another tree of this job still holds it: two runs of the job at once
if slots:
    held.append(next((fd for fd in map(take, (f"slot-{n}" for n in range(slots))) if fd is not None), None))
    if held[-1] is None:
        note(f"crowd {job} {run}")  # every slot is held: more runs of different jobs at once than allowed
note(f"start {job} {run} {os.getpid()}")
# A child that inherits the locks: a job tree stopped only in part keeps holding them.
child = subprocess.Popen(["sleep", "60"], pass_fds=[fd for fd in held if fd is not None])
print("PROGRESS 50 working", flush=True)
time.sleep(random.uniform(0.02, longest))
child.kill()
child.wait()
note(f"end {job} {run}")
"""


def job_line(journal: Path, *, longest: float = 0.25, slots: int = 0) -> str:
    """The command of a job running :data:`JOB` for up to ``longest`` seconds; its locks beside ``journal``."""
    return f"{job_command(JOB)} {journal} {journal.parent} {longest} {slots}"


MOMENTS = ("random", "state-saved", "file-gone", "http-202", "job-start", "job-end", "history-write")
"""Kinds of instants to kill at; with job ``a`` also ``a-saved`` (the state file has a new completed run of
``a``: its follower's trigger was saved just before, and the history is written next) and those of :data:`LINES`."""
LINES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "job-start": ("journal", lambda line: line.startswith("start ")),
    "job-end": ("journal", lambda line: line.startswith("end ")),
    # Job ``a``'s process ended: its run's end, the chain's trigger and its outcome's save come next.
    "a-job-end": ("journal", lambda line: line.startswith("end a ")),
    # A run of ``a`` is completed, saved and in the history: its follower starts next.
    "a-completed": ("log", lambda line: "orchestrator.runner.runs: a: run " in line and " completed in " in line),
}
"""Instants seen as lines written to a file (the journal, or the service's log), and how to know the line."""


@dataclass
class Round:
    """One service life: what was asked of it, and what it acknowledged before it was killed, by job."""

    number: int
    moment: str
    on_time: bool = False
    """Killed at that moment (not by the fallback timer: the moment did not come)."""
    files: dict[str, list[str]] = field(default_factory=dict)
    acked_http: dict[str, list[str]] = field(default_factory=dict)

    def promised(self, job: str) -> list[str]:
        return [*self.files.get(job, ()), *self.acked_http.get(job, ())]


class Killer:
    """SIGKILLs the service at the ``count``-th occurrence of ``moment`` (plus a delay of a few ms), or after a
    fallback time if that moment never comes in this round. Watches the folders with inotify."""

    def __init__(self, service: ServiceProcess, moment: str, rng: random.Random, journal: Path) -> None:
        self._service = service
        self.moment = moment
        self._count = rng.randint(1, 3)
        self._delay = rng.uniform(0, 0.004)
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.killed = threading.Event()
        self.on_time = False
        """Killed at the moment, not by the fallback timer."""
        self._observer = Observer()
        self._completed_a = completed_runs_of_a(service.data_dir)
        self._file = {"journal": journal, "log": service.log_path}.get(LINES.get(moment, ("",))[0])
        watched = {
            "state-saved": service.data_dir,
            "a-saved": service.data_dir,
            "history-write": service.data_dir,
            "file-gone": service.triggers_dir,
        }.get(moment, self._file.parent if self._file is not None else None)
        if watched is not None:
            # Recursive: the other jobs' folders are in the triggers folder.
            self._observer.schedule(_Handler(self._on_event), os.fspath(watched), recursive=moment == "file-gone")
        self._observer.start()
        fallback = rng.uniform(0.05, 0.6) if moment == "random" else 1.5
        self._timer = threading.Timer(fallback, self.kill, kwargs={"on_time": moment == "random"})
        self._timer.start()

    def _on_event(self, event: FileSystemEvent) -> None:
        name = os.path.basename(os.fsdecode(event.dest_path or event.src_path))
        kind = event.event_type
        if self.moment == "state-saved":
            # Renamed into place from the data folder's .tmp sub-folder (a move, or a creation as seen here), or
            # a record appended to its journal.
            hits = int(_state_saved(name, kind))
        elif self.moment == "a-saved" and _state_saved(name, kind):
            completed = completed_runs_of_a(self._service.data_dir)
            hits, self._completed_a = len(completed - self._completed_a), self._completed_a | completed
        elif self.moment == "history-write":
            hits = int(name == "runs.sqlite3-wal" and kind == "modified")
        elif self.moment == "file-gone":
            hits = int(kind == "deleted" and not event.is_directory)
        elif self._file is not None and name == self._file.name and kind == "modified":
            wanted = LINES[self.moment][1]
            lines = sum(map(wanted, self._file.read_text(errors="replace").splitlines()))
            hits, self._seen["lines"] = lines - self._seen["lines"], lines
        else:
            hits = 0
        for _ in range(hits):
            self.occurred()

    def occurred(self) -> None:
        with self._lock:
            self._seen[self.moment] += 1
            due = self._seen[self.moment] == self._count
        if due:
            deadline = time.monotonic() + self._delay
            while time.monotonic() < deadline:  # a few milliseconds after the moment: the fault's instant
                pass
            self.kill(on_time=True)

    def kill(self, *, on_time: bool) -> None:
        with self._lock:
            if self.killed.is_set():
                return
            self.killed.set()
            self.on_time = on_time
        self._service.proc.kill()

    def close(self) -> None:
        self._timer.cancel()
        self._observer.stop()
        self._observer.join(timeout=5)


def _state_saved(name: str, kind: str) -> bool:
    if name == STATE_FILE_NAME:
        return kind in ("moved", "created")
    return name == JOURNAL_FILE_NAME and kind in ("modified", "created")


def completed_runs_of_a(data_dir: Path) -> set[str]:
    """The last run of job ``a`` in the state file (and its journal), if it completed (as a set: none or one)."""
    try:
        last = read_state_file(data_dir / STATE_FILE_NAME, "snapshot")[0]["a"]["lastRun"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {last["runId"]} if isinstance(last, dict) and last.get("status") == "completed" else set()


class _Handler(FileSystemEventHandler):
    def __init__(self, handle: Callable[[FileSystemEvent], None]) -> None:
        self._handle = handle

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._handle(event)


@dataclass(frozen=True)
class Load:
    """What each round sends: up to ``files`` trigger files into each job's folder of ``folders`` (the folder
    relative to the triggers folder), up to ``posts`` POSTs to each job's trigger path of ``posts_to``."""

    folders: Mapping[str, str]
    posts_to: Mapping[str, str]
    files: int
    posts: int


def drop_files(folder: Path, names: list[str], written: list[str], rng: random.Random, stop: threading.Event) -> None:
    for name in names:
        if stop.is_set():
            return
        written.append(name)  # from its first byte on, it is the service's to take
        if rng.random() < 0.5:
            (folder / name).write_text(name)  # a reason of its own: its name again
        else:
            tmp = folder / f".{name}.tmp"
            tmp.write_text(name)
            os.replace(tmp, folder / name)
        time.sleep(rng.uniform(0, 0.02))  # the pace of the load, not a wait for anything


def post_triggers(service: ServiceProcess, path: str, reasons: list[str], acked: list[str], killer: Killer) -> None:
    for reason in reasons:
        try:
            status, _ = service.post_json(path, {"reason": reason}, timeout=5)
        except (OSError, urllib.error.URLError):
            return  # killed: an answer that never came promised nothing
        if status == 202:
            acked.append(reason)
            if killer.moment == "http-202":
                killer.occurred()


def processes_of_service(data_dir: Path) -> dict[int, str]:
    """Live processes started for runs of any job of the service on ``data_dir``, by the run id in their
    environment (each job is told its progress file, in the data folder)."""
    marker = f"SNAPSHOT_PROGRESS_FILE={data_dir}{os.sep}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as env:
                variables = env.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except (OSError, IndexError):
            continue
        if any(v.startswith(marker) for v in variables):
            run = next((v for v in variables if v.startswith(b"SNAPSHOT_RUN_ID=")), b"=?")
            found[int(entry)] = run.split(b"=", 1)[1].decode()
    return found


def started_runs(journal: Path) -> set[str]:
    text = journal.read_text() if journal.exists() else ""
    return {line.split()[2] for line in text.splitlines() if line.startswith("start ")}


def all_runs(service: ServiceProcess, api: str) -> list[dict[str, Any]]:
    """Every run in the history of the job whose operations are at ``api`` (``/api/jobs/a``), newest first."""
    runs: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = service.get_json(f"{api}/runs?limit=500{f'&cursor={cursor}' if cursor else ''}")
        runs += page["runs"]
        if page["nextCursor"] is None:
            return runs
        cursor = page["nextCursor"]
