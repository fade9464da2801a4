"""Atomic JSON files: one writer pattern (temp file in the same folder, fsync, rename) and one bounded reader."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from orchestrator.disk.datadir import ensure_folder, open_file

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1 << 20
"""Largest JSON document we read; a bigger file is treated as invalid rather than loaded into memory."""


class InvalidDocument(ValueError):
    """A JSON file that exists but is not a usable document (torn, not JSON, not an object, too big)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


TEMP_FOLDER_NAME = ".tmp"


def temp_folder(folder: Path) -> Path:
    """Where temp files for ``folder`` go: its ``.tmp`` sub-folder, else (if that cannot be made) itself.

    Not the folder itself, because watchdog pairs the two halves of a rename inside a watched folder and,
    now and then, waits 0.5 s for the second half: a rename *into* the folder from a sub-folder it does not
    watch is seen as one event and reported at once."""
    sub = folder / TEMP_FOLDER_NAME
    try:
        sub.mkdir(exist_ok=True)
    except OSError:
        return folder
    return sub


def write_json_atomic(path: Path, document: dict[str, Any], *, durable: bool = True) -> None:
    """Replace ``path`` with ``document`` so that a reader sees either the old file or the new one, whole.

    The temp file is a dot-file ending in ``.tmp`` on the same file system (``os.replace`` is atomic only
    within one), so a crash leaves at worst a stray temp file, never a half-written document. ``durable``
    adds an fsync of the file before the rename and of the folder after it, so that both the new content and
    the rename itself survive a power cut.

    No symlink is followed: the temp folder is opened with ``O_DIRECTORY | O_NOFOLLOW`` (a symlink there, which
    put the temp files in another folder, is replaced by a real one, said once), the temp file is created
    owner-only with ``O_EXCL | O_NOFOLLOW``, and the rename goes from one folder descriptor to the other (a
    rename replaces a symlink at ``path``, it never writes through it).
    """
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        temp = temp_folder_fd(folder, path.parent)
        try:
            fd, name = _create_temp(temp, path.name)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    if durable:
                        os.fsync(out.fileno())
                os.replace(name, path.name, src_dir_fd=temp, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=temp)
                raise
        finally:
            os.close(temp)
        if durable:
            _fsync_folder(folder)
    finally:
        os.close(folder)


_replaced_links: set[tuple[str, str]] = set()
"""Temp folders found as symlinks (folder, target): each said once, however often it is planted again."""


def temp_folder_fd(folder: int, where: Path) -> int:
    """The ``.tmp`` sub-folder of ``folder`` (see :func:`temp_folder`), else (if it cannot be made) a copy
    of ``folder``'s own descriptor."""
    try:
        fd, removed = ensure_folder(TEMP_FOLDER_NAME, dir_fd=folder)
    except OSError:
        return os.dup(folder)
    if removed is not None and (str(where), removed) not in _replaced_links:
        _replaced_links.add((str(where), removed))
        log.warning(
            "temp folder %s was a symlink to %r; not followed: replaced it with a real folder (its target is left "
            "as it is)",
            where / TEMP_FOLDER_NAME,
            removed,
        )
    return fd


def _create_temp(folder: int, final_name: str) -> tuple[int, str]:
    """A new owner-only file ``.<final_name>.<random>.tmp`` in ``folder``, never an existing name or link."""
    for _ in range(100):
        name = f".{final_name}.{os.urandom(6).hex()}.tmp"
        try:
            return open_file(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=folder), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", final_name)


def _fsync_folder(fd: int) -> None:
    """The rename is an entry in the folder: only an fsync of the folder makes it durable."""
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a folder; the rename has happened, and that is the best there is.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def read_json_object(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """Read a JSON object of at most ``limit`` bytes.

    Raises ``FileNotFoundError`` if there is no file and :class:`InvalidDocument` for anything else that
    is not a JSON object (a symlink, a directory, a FIFO or device, a torn write, a list, a file too big to be ours,
    nesting too deep to parse); ``OSError`` if it cannot be opened or read at all.
    """
    # O_NONBLOCK: a FIFO put where the file should be would otherwise block the open (and the event loop)
    # until some writer shows up. It changes nothing for a regular file. O_NOFOLLOW: the data folder's files
    # are the service's own; a symlink there was planted, and what it points at is not ours to read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidDocument(path, "is a symlink (not followed)") from None
        raise
    with os.fdopen(fd, "rb") as src:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InvalidDocument(path, "is a directory")
        if not stat.S_ISREG(mode):
            raise InvalidDocument(path, "is not a regular file")
        data = src.read(limit + 1)
    if len(data) > limit:
        raise InvalidDocument(path, f"larger than {limit} bytes")
    try:
        document = json.loads(data)
    # ValueError: also a number too long to convert (over 4300 digits) and bad UTF-8. RecursionError:
    # ``[[[[...`` nested deeper than the interpreter's stack; neither is a JSONDecodeError.
    except (ValueError, RecursionError) as exc:
        raise InvalidDocument(path, f"not JSON ({_short(exc)})") from exc
    if not isinstance(document, dict):
        raise InvalidDocument(path, f"not a JSON object but {type(document).__name__}")
    return document


def _short(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
