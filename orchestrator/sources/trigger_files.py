"""The triggers folder: which files count as triggers, what reason they carry, and taking them.

Any regular file whose name does not start with ``.`` and does not end in ``.tmp`` is a trigger. Taking
one means reading at most :data:`MAX_TRIGGER_BYTES` of it and, once its trigger is saved, unlinking it: the
file's disappearance tells the writer it was seen (and saved), and a later ``touch`` creates it anew. Unlink,
not rename: watchdog delays every later event by 0.5 s after a file is renamed out of a watched folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator.core.events import clean_reason
from orchestrator.core.streak import Streak
from orchestrator.disk.atomic import temp_folder

log = logging.getLogger(__name__)

MAX_TRIGGER_BYTES = 4096
"""Bytes of a trigger file that are read; the reason is cut there."""


SAID_NAMES = 3
"""Files named in the one line that says what is wrong with several; the others are counted."""


class OwnRemovals:
    """The paths of the trigger files this process is removing, each told just before its unlink: the triggers
    folders' watch (:mod:`~orchestrator.sources.loopobserver`) drops the deletion each one raises as soon as it
    is read (a burst's removals would cost as much as its arrivals). Nobody needs that news: the folder's look is ours,
    and what was heard of the file before is too old to matter by then (``Writers.leave``)."""

    def __init__(self) -> None:
        self._paths: set[bytes] = set()

    def __bool__(self) -> bool:
        return bool(self._paths)

    def expect(self, path: bytes) -> None:
        if len(self._paths) >= MAX_OWN_REMOVALS:  # deletions never heard (a folder nobody watches): told again
            self._paths.clear()
        self._paths.add(path)

    def unexpect(self, path: bytes) -> None:
        """The unlink failed: no deletion of ours comes."""
        self._paths.discard(path)

    def claim(self, path: bytes) -> bool:
        """Whether a deletion of ``path`` just read is one of ours (it is then forgotten)."""
        try:
            self._paths.remove(path)
        except KeyError:
            return False
        return True


OWN_REMOVALS = OwnRemovals()
"""The process's one (the triggers folders' watches are one inotify instance's)."""

MAX_OWN_REMOVALS = 100_000
"""Removals awaited at most; beyond that the oldest are forgotten and their deletions told as anyone's."""


def is_trigger_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not name.endswith(".tmp")


@dataclass(frozen=True, slots=True)
class TakenFile:
    """A trigger file read (not yet removed): its name, its reason, and what it was when read, so that its
    removal can tell it from a file written anew under the same name meanwhile."""

    name: str
    reason: str
    inode: int = 0
    changed_ns: int = 0


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
    """Lists, reads and removes trigger files. Synchronous, and slow only for a big burst: the caller runs it
    off the event loop (one call at a time), in batches.

    Taking a file is two steps with a save of the state between them (:meth:`read`, then :meth:`remove`):
    a crash between the two leaves the file to be read again, never a trigger lost.

    The folder is opened for each look without following a symlink (``O_DIRECTORY | O_NOFOLLOW``) and every
    file in it is listed, opened and removed through that descriptor (``scandir(fd)``, ``dir_fd=``): a triggers folder
    swapped for a symlink to another folder would otherwise have that folder's files read and removed. A path
    that is a symlink, or not a folder, is refused (logged once) until a real folder is there again.

    Entries named in ``leave_alone`` are skipped before anything else, without a word: other jobs' folders
    inside this one (whatever stands at such a name is that job's business, and its own watch says so)."""

    def __init__(self, folder: Path, *, leave_alone: Container[str] = frozenset()) -> None:
        self.folder = folder
        self._leave_alone = leave_alone
        self._fd: int | None = None
        """The folder as opened by the last :meth:`scan`; its reads and removals go through it."""
        self._warned: set[tuple[str, int]] = set()
        self._problems: dict[str, list[str]] = {}
        """What is wrong with which files, said at the end of the call that found it."""
        self._unremovable: set[tuple[str, int]] = set()
        self._unlistable = Streak()
        self._unreadable = False
        self._refused = Streak()

    @property
    def retry_soon(self) -> bool:
        """Whether the last look could not list the folder or look at a file in it. It then needs another
        look on a timer: a folder made readable again raises no event for the files that wait in it."""
        return self._unlistable.failing or self._unreadable or self._refused.failing

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def _open(self) -> int | None:
        """A fresh descriptor of the folder for this look, opened without following a symlink (``None``: no
        folder, or refused). Fresh each look: the path may name another folder by now."""
        self.close()
        try:
            # O_NOFOLLOW | O_DIRECTORY: a symlink or a file at the path fails the open (ENOTDIR) rather than
            # be followed or read; what it is, is looked at only then, for the warning.
            self._fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            _refuse(self.folder, self._refused)
            return None
        if self._refused.recovered():
            log.info("triggers folder %s is a real folder again", self.folder)
        return self._fd

    def scan(self, limit: int | None = None) -> list[os.DirEntry[str]] | None:
        """The trigger files present now, oldest first; none if the folder is missing or cannot be listed.
        ``None`` if there are more than ``limit`` (the listing stops there)."""
        self._unreadable = False
        try:
            fd = self._open()
            if fd is None:
                return []
            entries: list[os.DirEntry[str]] = []
            with os.scandir(fd) as listing:
                for entry in listing:
                    if is_trigger_name(entry.name) and entry.name not in self._leave_alone:
                        if limit is not None and len(entries) >= limit:
                            return None
                        entries.append(entry)
        except FileNotFoundError:
            return []
        except OSError as exc:  # e.g. no permission, or replaced by a file; logged once per streak
            if self._unlistable.failed():
                log.warning("triggers folder %s cannot be listed: %s", self.folder, exc.strerror)
            else:  # the same problem again: a debug line, not one warning per look
                log.debug("triggers folder %s still cannot be listed: %s", self.folder, exc.strerror)
            return []
        if self._unlistable.recovered():
            log.info("triggers folder %s can be listed again", self.folder)
        # Forget warnings about entries that are gone, so the sets cannot grow without bound.
        present = {(e.name, e.inode()) for e in entries}
        self._warned &= present
        self._unremovable &= present
        return sorted(entries, key=_mtime) if len(entries) > 1 else entries  # (one: no stat to sort it)

    def read(self, entries: list[os.DirEntry[str]]) -> list[TakenFile]:
        """Read these entries (from :meth:`scan`) without removing them; what is gone, not a trigger, or
        known to be unremovable (it triggered once already) is skipped."""
        fd = self._fd
        if fd is None:
            return []
        try:
            return [item for item in (self._read(fd, entry) for entry in entries) if item is not None]
        finally:
            self._say_problems()

    def remove(self, taken: list[TakenFile]) -> None:
        """Remove files read by :meth:`read` once their triggers are saved. A file changed since it was read
        (touched again, replaced) is a new trigger: it stays for the next look."""
        fd = self._fd
        if fd is None:
            return
        try:
            self._remove(fd, taken)
        finally:
            self._say_problems()

    def _remove(self, fd: int, taken: list[TakenFile]) -> None:
        folder = os.fsencode(os.path.normpath(self.folder)) + b"/"  # as the watch names its files
        for item in taken:
            try:
                now = os.stat(item.name, dir_fd=fd, follow_symlinks=False)
                if (now.st_ino, now.st_ctime_ns) != (item.inode, item.changed_ns):
                    continue
                _unlink_own(item.name, fd, folder + os.fsencode(item.name))
            except FileNotFoundError:
                pass  # taken by someone else, or the writer renamed it away
            except OSError as exc:
                # A trigger we cannot remove would fire on every look at the folder; it ran once, now ignore it.
                self._unremovable.add((item.name, item.inode))
                self._warn_once(item.name, item.inode, f"cannot be removed ({exc.strerror}); it will not trigger again")

    def take_all(self) -> list[TakenFile]:
        """Read and remove every trigger file present now, oldest first (no state to save in between)."""
        taken = self.read(self.scan() or [])
        self.remove(taken)
        return taken

    def _read(self, dir_fd: int, entry: os.DirEntry[str]) -> TakenFile | None:
        try:
            st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # taken by someone else, or the writer renamed it away
        except OSError as exc:  # the folder lost its search permission since it was listed
            self._unreadable = True
            self._warn_once(entry.name, entry.inode(), f"cannot be looked at ({exc.strerror}); will try again")
            return None
        if (entry.name, st.st_ino) in self._unremovable:
            return None
        if stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_nlink == 1):
            # A symlink counts as a trigger, but what it points to is never opened. An empty file (``touch``)
            # has its name for the reason: nothing to open (written since, its change keeps it for later).
            return TakenFile(entry.name, clean_reason(entry.name), st.st_ino, st.st_ctime_ns)
        if not stat.S_ISREG(st.st_mode):
            self._warn_once(entry.name, st.st_ino, "is not a regular file; ignoring it")
            return None
        try:
            # O_NOFOLLOW: the entry could have been swapped for a symlink since the stat.
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn_once(entry.name, st.st_ino, f"cannot be read ({exc.strerror}); taking it without a reason")
            return TakenFile(entry.name, clean_reason(entry.name), st.st_ino, st.st_ctime_ns)
        with os.fdopen(fd, "rb") as src:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                self._warn_once(entry.name, opened.st_ino, "is not a regular file; ignoring it")
                return None
            if opened.st_nlink > 1:
                # A hard link may name a file its maker could not read (a root-only secret): its content is
                # never published; it still triggers, with its name for the reason.
                self._warn_once(entry.name, opened.st_ino, "is a hard link; taking it with its name as the reason")
                return TakenFile(entry.name, clean_reason(entry.name), opened.st_ino, opened.st_ctime_ns)
            try:
                payload = src.read(MAX_TRIGGER_BYTES)
            except OSError as exc:
                self._warn_once(entry.name, st.st_ino, f"cannot be read ({exc.strerror}); taking it without a reason")
                payload = b""
        return TakenFile(entry.name, reason_from_payload(entry.name, payload), opened.st_ino, opened.st_ctime_ns)

    def _warn_once(self, name: str, inode: int, why: str) -> None:
        """Say, once per file, what is wrong with it: at the end of the call, in one line for all the files
        with the same problem (a burst of ten thousand unreadable files is one line, not ten thousand)."""
        if (name, inode) not in self._warned:
            self._warned.add((name, inode))
            self._problems.setdefault(why, []).append(name)

    def _say_problems(self) -> None:
        problems, self._problems = self._problems, {}
        for why, names in problems.items():
            # %r: a name may hold a newline, which would forge a log line.
            if len(names) == 1:
                log.warning("trigger file %r in %s %s", names[0], self.folder, why)
            else:
                named = ", ".join(repr(name) for name in names[:SAID_NAMES])
                more = f" and {len(names) - SAID_NAMES} more" if len(names) > SAID_NAMES else ""
                log.warning("%d trigger files in %s (%s%s): each %s", len(names), self.folder, named, more, why)


def _unlink_own(name: str, dir_fd: int, path: bytes) -> None:
    """Unlink ``name``, told to :data:`OWN_REMOVALS` as ``path`` first (and taken back if it fails)."""
    OWN_REMOVALS.expect(path)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        OWN_REMOVALS.unexpect(path)
        raise


def _refuse(folder: Path, refused: Streak) -> None:
    """Say (once per streak) what stands at the triggers folder's path instead of a folder."""
    try:
        info = os.stat(folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    if refused.failed():
        what = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a folder"
        log.warning(
            "triggers folder %s is %s; refusing it (nothing in it is read or removed) until a real folder is there",
            folder,
            what,
        )


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
