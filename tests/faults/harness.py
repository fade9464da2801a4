"""Helpers for the fault-injection tests: a real job the test drives line by line, a wait on the service log
that wakes on each write to it (inotify, no polling), and a tiny file system of its own (tmpfs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from tests.support import ServiceProcess, job_command

_JOB = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
while True:
    line = b""
    while not line.endswith(b"\n"):  # a byte at a time: the next line belongs to the next run
        byte = os.read(fd, 1)
        if not byte:
            sys.exit(3)
        line += byte
    text = line.decode().strip()
    if text.startswith("exit "):
        sys.exit(int(text.split()[1]))
    print(text, flush=True)
"""


class FifoJob:
    """A real job process (one per run) that does what the test writes into a FIFO: ``PROGRESS 40 step``
    lines are printed (the job protocol), ``exit N`` ends the run with status N.

    The test holds the FIFO open for reading and writing, so a job's open never blocks and lines written
    while no job runs wait in the pipe for the next run: :meth:`finish` is a permit, never a race."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "job.fifo"
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)

    @property
    def command(self) -> str:
        return f"{job_command(_JOB)} {self.path}"

    def send(self, *lines: str) -> None:
        os.write(self._fd, "".join(f"{line}\n" for line in lines).encode())

    def finish(self, status: int = 0) -> None:
        self.send(f"exit {status}")

    def close(self) -> None:
        os.close(self._fd)


class FileChanges:
    """Waits until a condition on one file holds, looking again on each inotify event for it (no polling)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        target = os.fspath(path)
        changed = self._changed

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if target in (os.fsdecode(event.src_path), os.fsdecode(event.dest_path)):
                    loop.call_soon_threadsafe(changed.set)

        self._observer = Observer()
        self._observer.schedule(Handler(), os.fspath(path.parent), recursive=False)
        self._observer.start()

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()
                    if check():
                        return
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.path}: no {what} within {timeout}s\n{self.describe()}") from None

    def describe(self) -> str:
        try:
            return self.path.read_text(errors="replace")[-20000:]
        except OSError as exc:
            return str(exc)

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


class FolderChanges(FileChanges):
    """Waits until a condition on a folder holds, looking again on each inotify event in it (no polling)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self._changed, self._observer = watch_everything(folder, recursive=False)


def watch_everything(root: Path, *, recursive: bool) -> tuple[asyncio.Event, BaseObserver]:
    """An event set on every inotify event under ``root``, and the observer that sets it (started)."""
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            loop.call_soon_threadsafe(changed.set)

    observer = Observer()
    observer.schedule(Handler(), os.fspath(root), recursive=recursive)
    observer.start()
    return changed, observer

    def describe(self) -> str:
        names = sorted(os.listdir(self.path))
        return f"{len(names)} entries: {names[:10]}"


async def until_consumed(folder: Path, timeout: float = 10) -> None:
    """Wait until no trigger file is left in ``folder``: each is removed once its trigger is saved, which may
    be a moment after the status counts it. Sub-folders are not trigger files (other jobs' folders)."""

    def left() -> list[str]:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if not e.name.startswith(".") and not e.is_dir(follow_symlinks=False)]

    changes = FolderChanges(folder)
    try:
        await changes.until(lambda: not left(), "empty", timeout)
    finally:
        changes.close()


class LogFollower(FileChanges):
    """Waits on the service's log; counts lines in it."""

    def __init__(self, service: ServiceProcess) -> None:
        super().__init__(service.log_path)
        self._service = service

    def text(self, since: int = 0) -> str:
        return self._service.logs()[since:]

    def mark(self) -> int:
        """A position in the log: count lines written after it with ``count(..., since=mark)``."""
        return len(self._service.logs())

    def count(self, *needles: str, since: int = 0) -> int:
        """Lines (written after ``since``) that contain every one of ``needles``."""
        return sum(all(n in line for n in needles) for line in self.text(since).splitlines())

    async def until_count(self, *needles: str, at_least: int, since: int = 0, timeout: float = 10) -> int:
        await self.until(lambda: self.count(*needles, since=since) >= at_least, f"{at_least}x {needles}", timeout)
        return self.count(*needles, since=since)


def ci() -> bool:
    return os.environ.get("CI") == "true"


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mount_point`` for the block (needs root / CAP_SYS_ADMIN).

    Raises :class:`PermissionError` if mounting is not allowed here."""
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", os.fspath(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PermissionError(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        # Lazy: a service that has not quite let go of its files must not leave the mount behind.
        subprocess.run(["umount", "-l", os.fspath(mount_point)], check=False, capture_output=True)


def remount(mount_point: Path, mode: str) -> None:
    """``mode`` is ``ro`` or ``rw``."""
    done = subprocess.run(
        ["mount", "-o", f"remount,{mode}", os.fspath(mount_point)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"cannot remount {mount_point} {mode}: {done.stderr.strip()}")


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``): a read of a whole huge file would show here."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")
