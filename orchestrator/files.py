"""Atomic JSON files: one writer pattern (temp file in the same folder, fsync, rename) and one bounded reader."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

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
    """
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=temp_folder(path.parent))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """The rename is an entry in the folder: only an fsync of the folder makes it durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a folder; the rename has happened, and that is the best there is.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def read_json_object(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """Read a JSON object of at most ``limit`` bytes.

    Raises ``FileNotFoundError`` if there is no file and :class:`InvalidDocument` for anything else that
    is not a JSON object (a directory, a FIFO or device, a torn write, a list, a file too big to be ours,
    nesting too deep to parse); ``OSError`` if it cannot be opened or read at all.
    """
    # O_NONBLOCK: a FIFO put where the file should be would otherwise block the open (and the event loop)
    # until some writer shows up. It changes nothing for a regular file.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
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
