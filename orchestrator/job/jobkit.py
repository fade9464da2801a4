"""A tiny helper for Python jobs. Standard library only, so a job may also copy this file instead.

    with step("Fetching GitHub PRs", percent=10, end=85, total=len(repos)) as s:
        for i, repo in enumerate(repos, 1):
            s.detail(f"repo {i}/{len(repos)}: {repo}")
            s.advance()  # 10 % at the start, 85 % at the end, done/total of the way in between

The percent is what ``percent=`` (at a step's start, or on a detail or count) or ``end=`` (at its end) says;
else the last one stays. Steps do not nest: a step started inside another replaces it. Under the service
(``$SNAPSHOT_PROGRESS_FILE`` set) each write replaces that file atomically, keeping the ``startedAt``/``trigger``
the service wrote for this run; outside it, each is printed as a ``PROGRESS {"percent": 45, ...}`` line, so the
job also runs by hand. Step starts and ends are written at once; details and counts at most once per 50 ms (a
job may report thousands a second), the latest always: at the window's end, the step's end, or exit.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import functools
import json
import os
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

MAX_STEP = 200
MAX_DETAIL = 500
EVERY = 0.05
"""Seconds between two writes of details or counts."""

Cancel = Callable[[], None]
Timer = Callable[[float, Callable[[], None]], Cancel]  # calls back in so many seconds unless cancelled first


@dataclass(frozen=True, slots=True)
class Report:
    """What the job says it is doing (``None``: not said)."""

    percent: float | None = None
    step: str | None = None
    detail: str | None = None
    done: int | None = None
    total: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form's keys that have a value (45.0 is written as 45)."""
        percent = self.percent if self.percent is None or not float(self.percent).is_integer() else int(self.percent)
        doc = {"percent": percent, "step": self.step, "detail": self.detail, "done": self.done, "total": self.total}
        return {key: value for key, value in doc.items() if value is not None}

    def line(self, plain: bool = False) -> str:
        """The ``PROGRESS`` line: JSON, or ``PROGRESS <percent> <step>`` when ``plain``."""
        said = f"{self.percent or 0:g} {self.step or ''}" if plain else json.dumps(self.to_json())
        return f"PROGRESS {said}"


@dataclass(frozen=True, slots=True, eq=False)
class Step:
    """A started step. As a context manager it ends the step on the way out: the percent becomes ``end``
    (unless an exception leaves the block) and the latest detail and counts are written at once."""

    reporter: Reporter
    name: str
    end: float | None = None

    def detail(self, text: str, percent: float | None = None) -> None:
        self.reporter.detail(text, percent)

    def count(self, done: int, total: int | None = None, percent: float | None = None) -> None:
        self.reporter.count(done, total, percent)

    def advance(self, n: int = 1) -> None:
        self.reporter.advance(n)

    def __enter__(self) -> Step:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.reporter.finish(self, ok=kind is None)


def _thread_timer(delay: float, callback: Callable[[], None]) -> Cancel:
    timer = threading.Timer(delay, callback)
    timer.daemon = True  # a pending write never keeps the job alive; exit writes it anyway
    timer.start()
    return timer.cancel


_REPORTERS: weakref.WeakSet[Reporter] = weakref.WeakSet()


class Reporter:
    """One job's reports: the current step, its detail and counts, and when they were last written.
    ``lines=True`` always prints ``PROGRESS`` lines, even under the service; else the environment decides."""

    def __init__(
        self,
        *,
        lines: bool = False,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
        timer: Timer = _thread_timer,
    ) -> None:
        self._lines, self._every, self._clock, self._timer = lines, every, clock, timer
        # Re-entrant: a signal handler that exits runs the flush on the thread that may be mid-write.
        self._lock = threading.RLock()
        self._said = Report()
        self._current: Step | None = None
        self._span: tuple[float, float] | None = None  # the current step's percent at start and end
        self._written_at = -float("inf")
        self._dirty = False
        self._pending: Cancel | None = None
        _REPORTERS.add(self)

    def step(
        self, name: str, percent: float | None = None, *, end: float | None = None, total: int | None = None
    ) -> Step:
        """Start the step ``name``, written at once; ``total`` starts its count at 0 of that."""
        with self._lock:
            self.flush()  # the last detail of the step before lands first
            start = self._said.percent if percent is None else _clamp(percent)
            total = _count(total)
            self._said = Report(start, _cut(name, MAX_STEP), None, None if total is None else 0, total)
            self._current = Step(self, self._said.step or "", None if end is None else _clamp(end))
            ends = self._current.end
            self._span = (start, ends) if start is not None and ends is not None else None
            self._write()
            return self._current

    def detail(self, text: str, percent: float | None = None) -> None:
        """What the current step does now; replaces the one before."""
        with self._lock:
            self._said = replace(self._said, detail=_cut(text, MAX_DETAIL), percent=self._percent(percent))
            self._soon()

    def count(self, done: int, total: int | None = None, percent: float | None = None) -> None:
        """``done`` of ``total`` (``None``: the total stays) in the current step."""
        with self._lock:
            done_, total_ = _count(done), self._said.total if total is None else _count(total)
            if percent is None and self._span is not None and done_ is not None and total_:
                low, high = self._span
                percent = low + (high - low) * min(done_, total_) / total_
            self._said = replace(self._said, done=done_, total=total_, percent=self._percent(percent))
            self._soon()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.count((self._said.done or 0) + n)

    def report(
        self, percent: float, step: str, *, detail: str | None = None, done: int | None = None, total: int | None = None
    ) -> None:
        """Percent and step (a new name starts a new step) and what else is given, written at once."""
        with self._lock:
            name = _cut(step, MAX_STEP)
            if name != self._said.step:
                self.flush()
                self._said, self._current, self._span = Report(step=name), None, None
            given: dict[str, Any] = {"detail": _cut(detail, MAX_DETAIL), "done": _count(done), "total": _count(total)}
            given = {key: value for key, value in given.items() if value is not None}
            self._said = replace(self._said, percent=_clamp(percent), **given)
            self._write(plain=not given)

    def finish(self, step: Step, ok: bool = True) -> None:
        """End ``step`` (what leaving its ``with`` block does): written at once."""
        with self._lock:
            if step is self._current:
                self._current, self._span = None, None
                if ok and step.end is not None and step.end != self._said.percent:
                    self._said = replace(self._said, percent=step.end)
                    self._dirty = True
            self.flush()

    def flush(self) -> None:
        """Write what is not written yet, now."""
        with self._lock:
            if self._dirty:
                self._write()

    def _percent(self, percent: float | None) -> float | None:
        return self._said.percent if percent is None else _clamp(percent)

    def _soon(self) -> None:
        """Write now, or at the end of the window when the last write was less than ``every`` ago."""
        self._dirty = True
        wait = self._written_at + self._every - self._clock()
        if wait <= 0:
            self._write()
        elif self._pending is None:
            self._pending = self._timer(wait, self.flush)

    def _write(self, plain: bool = False) -> None:
        if self._pending is not None:
            self._pending()
            self._pending = None
        self._dirty = False
        self._written_at = self._clock()
        target = None if self._lines else os.environ.get("SNAPSHOT_PROGRESS_FILE")
        if target:
            _write_file(Path(target), self._said)
        else:
            print(self._said.line(plain), flush=True)


@functools.cache
def default_reporter() -> Reporter:
    """The reporter behind the module's functions (one per process)."""
    return Reporter()


@atexit.register
def _flush_all() -> None:
    for reporter in list(_REPORTERS):
        reporter.flush()


def step(name: str, percent: float | None = None, *, end: float | None = None, total: int | None = None) -> Step:
    """Start the step ``name`` (at ``percent``; ``end``: the percent when it ends; ``total``: what it counts)."""
    return default_reporter().step(name, percent, end=end, total=total)


def detail(text: str, percent: float | None = None) -> None:
    """What the current step does now (``"repo 5/15: octo/api"``)."""
    default_reporter().detail(text, percent)


def count(done: int, total: int | None = None, percent: float | None = None) -> None:
    """How far the current step is: ``done`` of ``total``."""
    default_reporter().count(done, total, percent)


def report_progress(percent: float, step: str) -> None:
    """Report ``percent`` (0-100) done and what the job is doing now."""
    default_reporter().report(percent, step)


def _clamp(percent: float) -> float:
    return round(min(100.0, max(0.0, float(percent))), 2)  # in this order, NaN becomes 0


def _cut(text: str | None, limit: int) -> str | None:
    return None if text is None else str(text)[:limit]


def _count(value: int | None) -> int | None:
    return None if value is None else max(0, int(value))


def _write_file(path: Path, report: Report) -> None:
    run_id = os.environ.get("SNAPSHOT_RUN_ID")
    previous = _read_previous(path)
    # Keep what the service wrote for this run (when it started, what triggered it), nothing of older runs.
    kept = previous if isinstance(previous, dict) and previous.get("runId") == run_id else {}
    said = report.to_json()
    step = said.get("step", kept.get("step"))
    document: dict[str, Any] = {"status": "running", "step": step if isinstance(step, str) else ""}
    document.update(progress=said.get("percent", 0), runId=run_id)
    document.update({key: said[key] for key in ("detail", "done", "total") if key in said})
    document.update({k: kept[k] for k in ("startedAt", "trigger") if k in kept})
    # The temp file goes in the ``.tmp`` sub-folder, as the service's own writes do: a rename from there is
    # one inotify event, seen at once (a rename inside the watched folder is now and then held 0.5 s).
    with contextlib.ExitStack() as stack:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stack.callback(os.close, folder)
        temp = _temp_folder(folder)
        stack.callback(os.close, temp)
        fd, name = _create_temp(temp, path.name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out)
            os.replace(name, path.name, src_dir_fd=temp, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=temp)
            raise


def _temp_folder(folder: int) -> int:
    """``.tmp`` in ``folder``, opened without following a symlink; else (a symlink or a file is there, or it
    cannot be made) ``folder`` itself. A symlink there is left for the service, which owns the folder."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(".tmp", flags, dir_fd=folder)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            os.mkdir(".tmp", 0o700, dir_fd=folder)
    except OSError:
        return os.dup(folder)
    try:
        return os.open(".tmp", flags, dir_fd=folder)
    except OSError:
        return os.dup(folder)


def _create_temp(folder: int, final_name: str) -> tuple[int, str]:
    """A new owner-only ``.<final_name>.<random>.tmp``: never an existing name, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = f".{final_name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(name, flags, 0o600, dir_fd=folder), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", final_name)


def _read_previous(path: Path) -> Any:
    """The progress file as it is, or ``None``. Never blocks (a FIFO there), never reads more than 1 MiB, never
    fails on a lie (deep nesting, huge numbers): reporting progress must not be what breaks the job."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)  # a symlink: ELOOP
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return json.loads(os.read(fd, 1 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.jobkit [--detail TEXT] [--done N] [--total N] PERCENT STEP...``"""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.jobkit", description="Report a job's progress.")
    parser.add_argument("--detail", help="what the step does now")
    parser.add_argument("--done", type=int, help="how many the step has done")
    parser.add_argument("--total", type=int, help="of how many")
    parser.add_argument("percent", type=float, help="percent of the run done (0-100)")
    parser.add_argument("step", nargs=argparse.REMAINDER, help="the step's name")
    args = parser.parse_args(argv)
    default_reporter().report(args.percent, " ".join(args.step), detail=args.detail, done=args.done, total=args.total)
    return 0


if __name__ == "__main__":  # python -m orchestrator.jobkit 45 "step text"
    sys.exit(main())
