"""A JSON file replaced through a temp file made ahead of its content.

For the one write that must be soonest: the progress file's "running", just before a job is spawned. Opening
the folders and creating the temp file (on a busy disk the slow part: a new inode and a folder entry) are paid
earlier, off that path; the replacement itself is then a write and a rename, atomic as
:func:`~orchestrator.disk.atomic.write_json_atomic`'s (readers see the old document or the new one, whole), and
as safe: the temp file is made owner-only in the ``.tmp`` sub-folder without following a symlink, and renamed
from one folder descriptor to the other. Not durable (no fsync), like every write of the progress file."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.disk.atomic import temp_folder_fd
from orchestrator.disk.datadir import open_file


class StagedFile:
    """``path``, with at most one temp file staged for its next replacement. Not thread-safe: one caller."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._name = f".{path.name}.staged.tmp"
        """A fixed name: a temp file left by a crash is the one the next stage replaces, never one more."""
        self._ready: tuple[int, int, int] | None = None
        """The folder and its temp folder, open, and the temp file's inode."""

    @property
    def ready(self) -> bool:
        return self._ready is not None

    def stage(self) -> None:
        """Make the temp file for the next :meth:`replace` now; ``OSError`` if it cannot be made. The file is
        closed until then (a file open for writing would stop the folder's file system from being remounted
        read-only); the folders stay open."""
        self.discard()
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            temp = temp_folder_fd(folder, self.path.parent)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._name, dir_fd=temp)
                fd = open_file(self._name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=temp)
                inode = os.fstat(fd).st_ino
                os.close(fd)
            except BaseException:
                os.close(temp)
                raise
        except BaseException:
            os.close(folder)
            raise
        self._ready = (folder, temp, inode)

    def replace(self, document: dict[str, Any]) -> bool:
        """Replace the file with ``document`` through the staged temp file; ``False`` (nothing done) if none is
        staged, the folder at the path is no longer the one it was staged in, or the temp file is not the one
        made (nor empty). ``OSError`` as a write's."""
        ready, self._ready = self._ready, None
        if ready is None:
            return False
        folder, temp, inode = ready
        try:
            now, then = os.stat(self.path.parent), os.fstat(folder)
            if (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino):
                return False  # moved or replaced since: the caller writes the usual way, to the path
            try:
                fd = open_file(self._name, os.O_WRONLY, dir_fd=temp)
            except FileNotFoundError:
                return False
            try:
                made = os.fstat(fd)
                if made.st_ino != inode or made.st_size or not stat.S_ISREG(made.st_mode):
                    return False
                data = memoryview(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
            if not _exchange(temp, self._name, folder, self.path.name):
                os.replace(self._name, self.path.name, src_dir_fd=temp, dst_dir_fd=folder)
            return True
        finally:
            os.close(temp)
            os.close(folder)

    def discard(self) -> None:
        """Remove the staged temp file, if any."""
        ready, self._ready = self._ready, None
        if ready is None:
            return
        folder, temp, _ = ready
        with contextlib.suppress(OSError):
            os.unlink(self._name, dir_fd=temp)
        os.close(temp)
        os.close(folder)


RENAME_EXCHANGE = 2
"""``renameat2``'s flag (linux/fs.h): swap the two names, atomically; both must exist."""


def _exchange(src_dir: int, src: str, dst_dir: int, dst: str) -> bool:
    """Swap ``src`` and ``dst``; ``False`` (nothing done) where that cannot be done: no ``dst`` yet, no
    ``renameat2`` in the C library, a kernel or file system without the flag."""
    call = _renameat2()
    if call is None:
        return False
    if call(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), RENAME_EXCHANGE) == 0:
        return True
    import ctypes  # loaded by _renameat2 already

    code = ctypes.get_errno()
    if code in (errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code))


@functools.cache
def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """The C library's ``renameat2`` (glibc 2.28, musl 1.2.3), or ``None``."""
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call
