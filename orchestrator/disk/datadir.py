"""The data folder's files, opened without following symlinks, and kept owner-only.

Everything under ``data/`` is the service's own: a symlink found where one of its files or folders should be was
put there by someone else, and following it would write (truncate, append, create) wherever it points. So each
name in the folder is opened with ``O_NOFOLLOW`` through a descriptor of the folder (``dir_fd=``), a folder with
``O_DIRECTORY | O_NOFOLLOW``; a symlink in the way is removed (its target is left as it is) and replaced by the
service's own file or folder. The data folder itself is the operator's choice and may be a symlink.

Files are created 0600 and folders 0700 whatever the umask: the logs and the history say as much about the job
as the state file does, and ``--token-for-reads`` means nothing if any local user can read them. :func:`tighten`
brings a folder left by an earlier version (0644 files, 0755 folders) to the same modes at start.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
FOLDER_MODE = 0o700
SUB_FOLDERS = ("logs", ".tmp")
"""The service's own folders inside the data folder (run logs, temp files of the atomic writes)."""


def open_folder(path: str | Path, *, dir_fd: int | None = None) -> int:
    """A descriptor of the folder ``path`` (relative to ``dir_fd``), without following a symlink there: a
    symlink or a file raises ``NotADirectoryError`` (what ``O_DIRECTORY | O_NOFOLLOW`` gives for both)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def open_file(name: str, flags: int, *, dir_fd: int, mode: int = FILE_MODE) -> int:
    """``os.open`` of ``name`` in the folder ``dir_fd`` that never follows a symlink (``ELOOP`` if one is
    there) and creates owner-only; ``O_NONBLOCK`` so that a FIFO put there cannot hang the caller."""
    return os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dir_fd)


def is_symlink(name: str, *, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def remove_symlink(name: str, *, dir_fd: int) -> str | None:
    """If ``name`` in the folder is a symlink, remove it (never its target) and say where it pointed;
    ``None`` if it is not a symlink (or not there)."""
    if not is_symlink(name, dir_fd=dir_fd):
        return None
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except OSError:
        target = "?"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
    return target


def ensure_folder(name: str, *, dir_fd: int) -> tuple[int, str | None]:
    """A descriptor of the sub-folder ``name``, made (0700) if missing. A symlink there is removed and a real
    folder made in its place: (descriptor, where the removed link pointed, or ``None``). A file there raises
    ``NotADirectoryError``."""
    removed: str | None = None
    for _ in range(3):  # a folder removed (or a link planted) between two steps: look again, a few times
        try:
            return open_folder(name, dir_fd=dir_fd), removed
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, FOLDER_MODE, dir_fd=dir_fd)
        except NotADirectoryError:
            target = remove_symlink(name, dir_fd=dir_fd)
            if target is None:
                raise
            removed = target
    return open_folder(name, dir_fd=dir_fd), removed


def make_job_folder(path: Path) -> None:
    """A job's folder in the triggers folder, made if missing (as the umask says: other tools write there). A
    symlink or a file in its place is not followed or replaced: ``NotADirectoryError``."""
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, dir_fd=parent)
        if not stat.S_ISDIR(os.stat(path.name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder (a symlink is not followed)", str(path))
    finally:
        os.close(parent)


def make_data_folder(path: Path) -> None:
    """Create the data folder (0700; its parents as the umask says) if it is not there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=FOLDER_MODE)


@dataclass(frozen=True)
class OwnFiles:
    """Which files in the data folder are the service's: only those are tightened (an operator may keep
    other files there, a script among them, whose modes are theirs to choose)."""

    names: frozenset[str]
    """Files of the data folder itself; each also with ``-wal``, ``-shm``, ``-journal`` and ``.corrupt``."""
    logs: Callable[[str], bool]
    """Which names in ``logs/`` are run logs. Everything in ``.tmp/`` is ours."""

    def owns(self, folder: str, name: str) -> bool:
        if folder == "":
            base = name.removesuffix(".corrupt")
            for suffix in COMPANION_SUFFIXES:
                base = base.removesuffix(suffix)
            return base in self.names
        return folder == ".tmp" or (folder == "logs" and self.logs(name))


COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
"""Files SQLite keeps next to a database, opened by SQLite itself."""


def tighten(data_dir: Path, own: OwnFiles, *, shared: Path | None = None) -> None:
    """Take group and other permissions away from the data folder, its own sub-folders and the service's own
    files in them (one line says what was changed, one what could not be). Only what the service's user owns
    is changed, and no symlink is followed: a symlink in place of a sub-folder is replaced by a real folder
    (said once, with where it pointed).

    ``shared``: a folder others write into (the triggers folder). If it is inside the data folder, the data
    folder's own mode is left alone: 0700 would lock the other writers out, at every start."""
    done = _Tightened(own)
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the operator's path: may be a link
    try:
        if shared is None or not shared.resolve().is_relative_to(data_dir.resolve()):
            done.tighten(fd, "(the folder itself)")
        done.tighten_files(fd, "")
        for name in SUB_FOLDERS:
            if not exists(name, dir_fd=fd):
                continue
            try:
                sub, removed = ensure_folder(name, dir_fd=fd)
            except OSError as exc:
                log.warning("cannot look at %s/%s: %s", data_dir, name, exc.strerror or exc)
                continue
            try:
                if removed is not None:
                    log.warning(
                        "%s/%s was a symlink to %r; not followed: replaced it with a real folder (its target is "
                        "left as it is)",
                        data_dir,
                        name,
                        removed,
                    )
                done.tighten(sub, name)
                done.tighten_files(sub, f"{name}/")
            finally:
                os.close(sub)
    finally:
        os.close(fd)
    if done.changed:
        log.info(
            "took group and other permissions away from %d item(s) in %s: %s",
            len(done.changed),
            data_dir,
            _some(done.changed),
        )
    if done.failed:
        log.warning("cannot make %d item(s) in %s owner-only: %s", len(done.failed), data_dir, _some(done.failed))


def exists(name: str, *, dir_fd: int) -> bool:
    """Whether ``name`` is in the folder, whatever it is (a symlink is not followed)."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _some(items: list[str]) -> str:
    return ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")


class _Tightened:
    """What one :func:`tighten` changed, and what it could not (a read-only folder, a file not ours to chmod)."""

    def __init__(self, own: OwnFiles) -> None:
        self.own = own
        self.changed: list[str] = []
        self.failed: list[str] = []

    def tighten_files(self, dir_fd: int, prefix: str) -> None:
        folder = prefix.removesuffix("/")
        with os.scandir(dir_fd) as listing:
            names = [
                entry.name
                for entry in listing
                if entry.is_file(follow_symlinks=False) and self.own.owns(folder, entry.name)
            ]
        for name in names:
            try:
                fd = open_file(name, os.O_RDONLY, dir_fd=dir_fd)
            except OSError:
                continue  # gone, swapped for a symlink, or unreadable (write-only): not ours to fix
            try:
                self.tighten(fd, prefix + name)
            finally:
                os.close(fd)

    def tighten(self, fd: int, name: str) -> None:
        info = os.fstat(fd)
        is_dir = stat.S_ISDIR(info.st_mode)
        if info.st_uid != os.geteuid() or not info.st_mode & 0o077 or not (is_dir or stat.S_ISREG(info.st_mode)):
            return
        try:
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & ~0o077)  # 0644 -> 0600, 0755 -> 0700
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EROFS):
                raise
            self.failed.append(f"{name} ({exc.strerror})")
            return
        self.changed.append(f"{name} (was {stat.S_IMODE(info.st_mode):o})")
