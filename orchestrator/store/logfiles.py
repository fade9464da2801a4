"""The run log files in ``data/logs``: one ``<runId>.log`` per run, appended to in batches, read by range.

No symlink in the data folder is followed (see orchestrator/disk/datadir.py): the logs folder is opened with
``O_DIRECTORY | O_NOFOLLOW`` and each log through its descriptor with ``O_NOFOLLOW``. A logs folder found to be a
symlink is replaced by a real folder; a log file found to be one (or gone) mid-run is replaced by a fresh
owner-only file whose first line, padded to the length that was written before, says that those bytes are lost:
so every offset a reader holds still points at the same line, and the job's later lines land in the new file.
Every call here is blocking (for a worker thread); the live capture that feeds it is
:mod:`orchestrator.store.runlogs`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.disk.datadir import ensure_folder, make_data_folder, open_file, open_folder, remove_symlink
from orchestrator.job.protocol import MARK, Pipe

LOGS_DIR_NAME = "logs"
LOG_NAME = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]+\.log$")
"""What a run's log file is called; nothing else in the folder is ever removed."""


class LogFiles:
    """The log files of one data folder (a :class:`~orchestrator.store.api.RunLogs`)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._folder = data_dir / LOGS_DIR_NAME

    @property
    def folder(self) -> Path:
        return self._folder

    def relative_path(self, run_id: str) -> str:
        return f"{LOGS_DIR_NAME}/{run_id}.log"

    def path_of(self, relative: str | None) -> Path | None:
        if not relative or "/" not in relative:
            return None
        folder, name = relative.split("/", 1)
        if folder != LOGS_DIR_NAME or not LOG_NAME.match(name):
            return None
        return self._folder / name

    def append(self, run_id: str, data: bytes, *, first: bool) -> None:
        size = 0 if first else self._size_now(run_id)
        _, failure, _ = append_batch(Batch(self.data_dir, f"{run_id}.log", data, first, size, ""))
        if failure is not None:
            raise failure

    def _size_now(self, run_id: str) -> int:
        with contextlib.suppress(OSError):
            return log_size(self._folder / f"{run_id}.log")
        return 0

    def read(self, path: Path, start: int, end: int) -> bytes:
        return read_range(path, start, end)

    def size(self, path: Path) -> int:
        return log_size(path)

    def names(self) -> list[str]:
        return list_logs(self._folder)

    def remove(self, names: Sequence[str]) -> None:
        remove_logs(self._folder, names)


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch for one log, as the worker thread gets it."""

    data_dir: Path
    name: str
    data: bytes
    first: bool
    """Nothing of the log is on disk yet: the file is made (or emptied)."""
    flushed: int
    """Bytes of the log already written (what a fresh file must make room for)."""
    stamp: str


def append_all(jobs: list[Batch]) -> list[tuple[int, OSError | None, list[str]]]:
    return [append_batch(job) for job in jobs]


def append_batch(job: Batch) -> tuple[int, OSError | None, list[str]]:
    """Append ``job.data`` (the first time: replace the file); how many bytes landed, the error if not all, and
    what symlinks were found and replaced on the way (to be said once)."""
    written = 0
    replaced: list[str] = []
    try:
        folder = _logs_folder(job.data_dir, replaced)
        try:
            fd = _open_log(folder, job, replaced)
            try:
                view = memoryview(job.data)
                while written < len(job.data):
                    written += os.write(fd, view[written:])
            finally:
                os.close(fd)
        finally:
            os.close(folder)
    except OSError as exc:
        return written, exc, replaced
    return written, None, replaced


def _logs_folder(data_dir: Path, replaced: list[str]) -> int:
    try:
        top = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        make_data_folder(data_dir)  # the data folder was removed
        top = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        folder, removed = ensure_folder(LOGS_DIR_NAME, dir_fd=top)
    finally:
        os.close(top)
    if removed is not None:
        replaced.append(
            f"the logs folder {data_dir / LOGS_DIR_NAME} was a symlink to {removed!r}; not followed: replaced it "
            "with a real folder (its target is left as it is)"
        )
    return folder


def _open_log(folder: int, job: Batch, replaced: list[str]) -> int:
    flags = os.O_WRONLY | os.O_APPEND
    if job.first:
        try:
            return open_file(job.name, flags | os.O_CREAT | os.O_TRUNC, dir_fd=folder)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        target = remove_symlink(job.name, dir_fd=folder)
        replaced.append(f"its log file {job.name} was a symlink to {target!r}; not followed: replaced it")
        return open_file(job.name, flags | os.O_CREAT | os.O_EXCL, dir_fd=folder)
    try:
        return open_file(job.name, flags, dir_fd=folder)
    except FileNotFoundError:
        why = "gone (removed, or its folder was)"
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        why = f"replaced by a symlink (to {remove_symlink(job.name, dir_fd=folder)!r}), which was removed, not followed"
    replaced.append(
        f"its log file {job.name} was {why}; the next lines go to a fresh file, whose first line says that the "
        f"{job.flushed} bytes written before are lost"
    )
    fd = open_file(job.name, flags | os.O_CREAT | os.O_EXCL, dir_fd=folder)
    try:
        _write_lost(
            fd,
            job.flushed,
            f"{job.stamp} {Pipe.ERR} {MARK} the first {job.flushed} bytes of this log are lost: its file was {why}",
        )
    except OSError:
        # Half a marker would shift every later line: the next try starts over.
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(job.name, dir_fd=folder)
        raise
    return fd


def _write_lost(fd: int, size: int, text: str) -> None:
    """A line of exactly ``size`` bytes saying ``text``, so that readers' offsets still point at the lines that
    follow. Its padding is a hole (read back as spaces, see :func:`read_range`), not written bytes: a log
    removed to free a full disk (50 MiB at most) must not take the space back at once."""
    if size <= 0:
        return
    line = text.encode(errors="replace")[: size - 1]
    done = 0
    while done < len(line):
        done += os.write(fd, line[done:])
    os.ftruncate(fd, size - 1)  # the file is opened O_APPEND: the newline lands at size - 1
    os.write(fd, b"\n")


def read_range(path: Path, start: int, end: int) -> bytes:
    """Bytes ``start`` .. ``end`` of a log file (for a worker thread); a symlink is not followed (``OSError``)."""
    with os.fdopen(_open_for_reading(path), "rb") as file:
        file.seek(start)
        # NULs are the padding of a lost-bytes line (a hole), or a job's own: either way shown as spaces.
        return file.read(max(0, end - start)).replace(b"\0", b" ")


def log_size(path: Path) -> int:
    """The size of a log file, without following a symlink (``OSError``) to the log or its folder."""
    fd = _open_for_reading(path)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _open_for_reading(path: Path) -> int:
    folder = open_folder(path.parent)
    try:
        fd = open_file(path.name, os.O_RDONLY, dir_fd=folder)
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def list_logs(folder: Path) -> list[str]:
    """Names of the run logs in ``folder``, listed without following a symlink to it (``OSError``; a missing
    folder is ``FileNotFoundError``)."""
    fd = open_folder(folder)
    try:
        with os.scandir(fd) as listing:
            return [entry.name for entry in listing if LOG_NAME.match(entry.name)]
    finally:
        os.close(fd)


def remove_logs(folder: Path, names: Sequence[str]) -> None:
    """Remove these files from ``folder`` (through its descriptor: a symlink to the folder is not followed)."""
    if not names:
        return
    try:
        fd = open_folder(folder)
    except FileNotFoundError:
        return  # removed with everything in it: nothing left to remove
    try:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
