"""The state file's journal (``orchestrator_state.journal``, beside it): a save appends one record, the states
that changed, and makes it durable with one ``fdatasync``. Writing the whole state file instead (a new file,
fsynced, renamed into place, its folder fsynced) costs a few times more, and a save stands between each
trigger and its run's spawn. Now and then the state file is written whole again and the journal emptied (see
:class:`~orchestrator.store.statefile.StateFile`).

A record is a line ``<crc32, 8 hex digits> <length>`` followed by a JSON object ``{"seq": n, "jobs": {name:
state or null}}`` and a newline, padded with zeros to a multiple of :data:`BLOCK` bytes: each record then takes
blocks of its own, so on a full disk a save fails (is refused) rather than landing in a block's slack one time
and failing the next. Reading stops at the first record that is torn (a crash in the middle of an append), does
not check, or does not follow the one before it (``seq`` one more): what follows it is never trusted. Records
numbered at or below the state file's ``journal`` are in the state file already (a compaction whose emptying of
the journal did not land) and are skipped.

The file is opened for each append and closed after it (a file kept open for writing would keep its file
system from being remounted read-only), without following a symlink, owner-only. Anything else at its name (a
symlink, a file with other hard links, a FIFO) is not the journal: a reader sees no records in it, and a writer
removes the name (never what it leads to, one log line) and makes the journal anew."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.disk.atomic import InvalidDocument
from orchestrator.disk.datadir import open_file

log = logging.getLogger(__name__)

JOURNAL_FILE_NAME = "orchestrator_state.journal"
BLOCK = 4096
COMPACT_BYTES = 256 * 1024
"""A journal this big is folded into the state file at the next save (a few dozen runs' saves)."""
HEAD_BYTES = 32
"""Longest head line (crc, space, length, newline) read before giving up on a record."""

Jobs = dict[str, dict[str, Any] | None]
"""States by job; ``None``: the job's state is gone."""


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    jobs: Jobs


def encode(record: Record) -> bytes:
    payload = json.dumps({"seq": record.seq, "jobs": record.jobs}, ensure_ascii=False, separators=(",", ":")).encode()
    data = b"%08x %d\n%b\n" % (zlib.crc32(payload), len(payload), payload)
    return data + bytes(-len(data) % BLOCK)


def decode(data: bytes, after: int) -> tuple[list[Record], int]:
    """The records in ``data`` that come after ``after`` one by one, and the last one's number (``after`` if
    none)."""
    found: list[Record] = []
    last, offset = after, 0
    while offset < len(data):
        record, end = _one(data, offset)
        if record is None:
            break
        if record.seq > after:
            if record.seq != last + 1:
                break
            found.append(record)
            last = record.seq
        offset = end + (-end % BLOCK)
    return found, last


def _one(data: bytes, offset: int) -> tuple[Record | None, int]:
    """The record at ``offset`` and where it ends; ``None`` if there is none whole and checked."""
    newline = data.find(b"\n", offset, offset + HEAD_BYTES)
    head = data[offset:newline].split(b" ") if newline > 0 else []
    if len(head) != 2 or not head[1].isdigit() or len(head[0]) != 8:
        return None, offset
    try:
        crc = int(head[0], 16)
    except ValueError:
        return None, offset
    start = newline + 1
    end = start + int(head[1])
    if end >= len(data) or data[end] != ord("\n") or zlib.crc32(data[start:end]) != crc:
        return None, offset
    try:
        doc = json.loads(data[start:end])
    except (ValueError, RecursionError):
        return None, offset
    seq, jobs = (doc.get("seq"), doc.get("jobs")) if isinstance(doc, dict) else (None, None)
    if not isinstance(seq, int) or not isinstance(jobs, dict):
        return None, offset
    states = {str(name): state for name, state in jobs.items() if state is None or isinstance(state, dict)}
    return Record(seq, states), end + 1


class Journal:
    """Appends records to the journal at ``path`` and reads them back; every failure is an ``OSError``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, after: int, limit: int) -> tuple[list[Record], int, int]:
        """Its records after ``after`` (see :func:`decode`), the last one's number, and the file's size (0: no
        file, or something that is not the journal at its name). ``InvalidDocument`` if it is bigger than
        ``limit``."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return [], after, 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return [], after, 0  # a symlink: not ours (the next save replaces it)
            raise
        with os.fdopen(fd, "rb") as src:
            if _foreign(os.fstat(fd)):
                return [], after, 0
            data = src.read(limit + 1)
        if len(data) > limit:
            raise InvalidDocument(self.path, f"larger than {limit} bytes")
        found, last = decode(data, after)
        return found, last, len(data)

    def append(self, record: Record) -> int:
        """Add ``record``, durable when this returns; the journal's size after it. A write that fails is cut
        off again (if it can be: else reading stops before it, and the caller writes the state file whole)."""
        data = encode(record)
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd, made = self._open(folder)
            try:
                size = os.fstat(fd).st_size
                try:
                    written = 0
                    while written < len(data):
                        written += os.pwrite(fd, data[written:], size + written)
                    os.fdatasync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
            if made:
                os.fsync(folder)  # the new file's name, durable too
        finally:
            os.close(folder)
        return size + len(data)

    def clear(self) -> None:
        """Empty the journal (its records are in the state file now). Not synced: records left by a crash are
        numbered at or below the state file's ``journal``, and skipped."""
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if not self._replace_foreign(folder):
                with contextlib.suppress(FileNotFoundError):
                    fd = open_file(self.path.name, os.O_WRONLY, dir_fd=folder)
                    try:
                        os.ftruncate(fd, 0)
                    finally:
                        os.close(fd)
        finally:
            os.close(folder)

    def _open(self, folder: int) -> tuple[int, bool]:
        """The journal open for writing in ``folder``, and whether it was made now (anything else at its name
        removed first)."""
        self._replace_foreign(folder)
        try:
            return open_file(self.path.name, os.O_WRONLY, dir_fd=folder), False
        except FileNotFoundError:
            return open_file(self.path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=folder), True

    def _replace_foreign(self, folder: int) -> bool:
        """Remove what is at the journal's name if it is not the journal (the name only: a symlink's target or
        a hard link's other names are left as they are); whether something was removed."""
        try:
            info = os.stat(self.path.name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not _foreign(info):
            return False
        what = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a file of its own"
        os.unlink(self.path.name, dir_fd=folder)  # a folder there raises: saves fail, said by the state file
        log.warning("state journal %s was %s; removed it (what it led to is untouched) and began anew", self.path, what)
        return True


def _foreign(info: os.stat_result) -> bool:
    """Not the journal: anything but a regular file with no other name (a hard link would have a truncate or an
    append land in a file somewhere else)."""
    return not stat.S_ISREG(info.st_mode) or info.st_nlink != 1
