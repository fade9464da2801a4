"""One service per data folder: an exclusive ``flock`` on ``<data>/orchestrator.lock``, held for the process's
life. The kernel drops it when the process dies, however it dies, so a crash never leaves a stale lock; the file's
content (who holds it) is only there to name the first instance in the second one's error message.

The file is opened without following a symlink (through the data folder's descriptor): a symlink planted there
had its target truncated and overwritten with the holder's note at every start. It is removed (the CLI says so)
and the service's own file, owner-only, made in its place."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.disk.datadir import open_file, remove_symlink

LOCK_FILE_NAME = "orchestrator.lock"


class AlreadyLocked(Exception):
    """Another live process holds the lock; ``holder`` says who, as far as its file tells."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path = path
        self.holder = holder


class InstanceLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = None
        self.replaced_link: str | None = None
        """Where a symlink found at the lock file's name pointed (it was removed): for the CLI to say, once its
        log is set up."""

    def acquire(self, holder: dict[str, Any]) -> None:
        """Take the lock or raise :class:`AlreadyLocked`; on success write ``holder`` into the file.

        ``O_CLOEXEC``: the job must not inherit the lock, or a job outliving a crashed service would keep the
        next service from starting (and the next service is the one that stops that job)."""
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = self._open(folder)  # read-only: see below
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = _read_holder(fd)
                os.close(fd)
                raise AlreadyLocked(self.path, text) from None
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            with contextlib.suppress(OSError):  # the lock is what counts; the note is a courtesy
                _write_holder(folder, fd, json.dumps(holder) + "\n")
        finally:
            os.close(folder)

    def _open(self, folder: int) -> int:
        try:
            return open_file(LOCK_FILE_NAME, os.O_RDONLY | os.O_CREAT, dir_fd=folder)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        self.replaced_link = remove_symlink(LOCK_FILE_NAME, dir_fd=folder)
        return open_file(LOCK_FILE_NAME, os.O_RDONLY | os.O_CREAT, dir_fd=folder)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays, harmless
            self._fd = None


def _write_holder(folder: int, locked: int, note: str) -> None:
    """Through a short-lived second fd: a file held open for writing would keep the data folder from being
    remounted read-only (EBUSY); flock belongs to ``locked`` alone, so closing this one keeps it. Written only
    if the name still is the locked file (not a symlink, not a file swapped in since)."""
    fd = open_file(LOCK_FILE_NAME, os.O_WRONLY, dir_fd=folder)
    try:
        mine, now = os.fstat(locked), os.fstat(fd)
        if (mine.st_dev, mine.st_ino) != (now.st_dev, now.st_ino):
            return
        os.ftruncate(fd, 0)
        os.write(fd, note.encode())
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        note = json.loads(raw)
    except (OSError, ValueError):
        return "another process (no details in the lock file)"
    if not isinstance(note, dict):
        return "another process (no details in the lock file)"
    parts = [f"pid {note.get('pid', '?')}"]
    if note.get("url"):
        parts.append(str(note["url"]))
    if note.get("startedAt"):
        parts.append(f"started {note['startedAt']}")
    return "snapshot-orchestrator " + ", ".join(parts)
