"""The triggers folder: which files count as triggers, what reason they carry, and taking them.

Any regular file whose name does not start with ``.`` and does not end in ``.tmp`` is a trigger. Taking
one means reading at most :data:`MAX_TRIGGER_BYTES` of it and unlinking it: the file's disappearance tells
the writer it was seen, and a later ``touch`` creates it anew. Unlink, not rename: watchdog delays every
later event by 0.5 s after a file is renamed out of a watched folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator.events import clean_reason
from orchestrator.files import temp_folder

log = logging.getLogger(__name__)

MAX_TRIGGER_BYTES = 4096
"""Bytes of a trigger file that are read; the reason is cut there."""


def is_trigger_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not name.endswith(".tmp")


@dataclass(frozen=True, slots=True)
class TakenFile:
    name: str
    reason: str


def reason_from_payload(name: str, payload: bytes) -> str:
    """Empty file: the file's name. JSON object with ``reason``: that. Anything else: the text itself.
    Always cleaned (one printable line, capped)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if not text:
        # Cleaned too: a name may hold a newline, and a reason ends up in the log and the job's environment.
        return clean_reason(name)
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        # RecursionError: ``{"a": [[[[...`` parses deeper than the stack; it must not kill the folder source.
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            reason = doc.get("reason")
            return clean_reason(str(reason)) if reason not in (None, "") else clean_reason(name)
    return clean_reason(text) or clean_reason(name)


class TriggerFolder:
    """Lists and takes trigger files. Synchronous, and slow only for a big burst: the caller runs it off the
    event loop (one call at a time), in batches."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._warned: set[tuple[str, int]] = set()
        self._unlistable = False
        self._unreadable = False

    @property
    def retry_soon(self) -> bool:
        """Whether the last look could not list the folder or look at a file in it. It then needs another
        look on a timer: a folder made readable again raises no event for the files that wait in it."""
        return self._unlistable or self._unreadable

    def scan(self) -> list[os.DirEntry[str]]:
        """The trigger files present now, oldest first; none if the folder is missing or cannot be listed."""
        self._unreadable = False
        try:
            entries = [e for e in os.scandir(self.folder) if is_trigger_name(e.name)]
        except FileNotFoundError:
            return []
        except OSError as exc:  # e.g. no permission, or replaced by a file; logged once per streak
            if self._unlistable:  # the same problem again: a debug line, not one warning per look
                log.debug("triggers folder %s still cannot be listed: %s", self.folder, exc.strerror)
            else:
                log.warning("triggers folder %s cannot be listed: %s", self.folder, exc.strerror)
            self._unlistable = True
            return []
        if self._unlistable:
            log.info("triggers folder %s can be listed again", self.folder)
        self._unlistable = False
        # Forget warnings about entries that are gone, so the set cannot grow without bound.
        present = {(e.name, e.inode()) for e in entries}
        self._warned &= present
        return sorted(entries, key=_mtime)

    def take(self, entries: list[os.DirEntry[str]]) -> list[TakenFile]:
        """Take these entries (from :meth:`scan`); what is gone or not a trigger is skipped."""
        return [item for item in map(self._take, entries) if item is not None]

    def take_all(self) -> list[TakenFile]:
        """Take every trigger file present now, oldest first."""
        return self.take(self.scan())

    def _take(self, entry: os.DirEntry[str]) -> TakenFile | None:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None  # taken by someone else, or the writer renamed it away
        except OSError as exc:  # the folder lost its search permission since it was listed
            self._unreadable = True
            self._warn_once(entry.name, entry.inode(), f"cannot be looked at ({exc.strerror}); will try again")
            return None
        if stat.S_ISLNK(st.st_mode):
            # A symlink counts as a trigger, but what it points to is never opened.
            return self._unlink(entry.name, st.st_ino, b"")
        if not stat.S_ISREG(st.st_mode):
            self._warn_once(entry.name, st.st_ino, "is not a regular file; ignoring it")
            return None
        try:
            # O_NOFOLLOW: the entry could have been swapped for a symlink since the stat.
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn_once(entry.name, st.st_ino, f"cannot be read ({exc.strerror}); taking it without a reason")
            return self._unlink(entry.name, st.st_ino, b"")
        try:
            with os.fdopen(fd, "rb") as src:
                payload = src.read(MAX_TRIGGER_BYTES)
        except OSError as exc:
            self._warn_once(entry.name, st.st_ino, f"cannot be read ({exc.strerror}); taking it without a reason")
            payload = b""
        return self._unlink(entry.name, st.st_ino, payload)

    def _unlink(self, name: str, inode: int, payload: bytes) -> TakenFile | None:
        try:
            os.unlink(self.folder / name)
        except FileNotFoundError:
            return None  # another taker won; it counts once
        except OSError as exc:
            # A trigger we cannot remove would fire on every look at the folder; run it once, then ignore.
            if (name, inode) in self._warned:
                return None
            self._warn_once(name, inode, f"cannot be removed ({exc.strerror}); it will not trigger again")
        return TakenFile(name=name, reason=reason_from_payload(name, payload))

    def _warn_once(self, name: str, inode: int, why: str) -> None:
        if (name, inode) not in self._warned:
            self._warned.add((name, inode))
            # %r: a name may hold a newline, which would forge a log line.
            log.warning("trigger file %r in %s %s", name, self.folder, why)


def _mtime(entry: os.DirEntry[str]) -> float:
    with contextlib.suppress(OSError):
        return entry.stat(follow_symlinks=False).st_mtime
    return 0.0


def write_trigger_file(folder: Path, reason: str, now: datetime) -> Path:
    """Drop a trigger file the safe way (``.tmp`` then rename) for ``python -m orchestrator trigger``."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    final = folder / f"cli-{stamp}-{os.getpid()}"
    tmp = temp_folder(folder) / f"{final.name}.tmp"
    tmp.write_text(json.dumps({"reason": reason}) if reason else "", encoding="utf-8")
    os.replace(tmp, final)
    return final
