"""What inotify told of each trigger file: a file still being written is left for its writer's close."""

from __future__ import annotations

import os
import stat
import threading
from enum import Enum

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
)

from orchestrator.core.clock import Clock
from orchestrator.sources.trigger_files import is_trigger_name
from orchestrator.sources.watch import CONTENT_EVENTS

UNCLOSED_SECONDS = 60.0
"""A regular file created in the folder is taken when its writer closes it, so that a slow writer's reason
is not cut short. This is the safety net for a creation whose close never comes (a hard link whose other
name was removed at once): the folder is looked at this long after the creation anyway."""


MAX_TRACKED_FILES = 10_000
"""Files tracked before those whose news no longer matters are dropped (then again at twice what is left)."""
UNHEARD_SECONDS = 0.25
JUST_CREATED = "just created"
"""A file this new that no event has been heard for yet is left for the next look (which its events bring)."""


class Heard(Enum):
    """What inotify told of a trigger file, last."""

    MADE = "made"
    """Created, no writer heard opening it yet."""
    WRITING = "writing"
    """Created and opened: its writer's close is waited for."""
    WHOLE = "whole"
    """Closed after writing, renamed into place, or a link to content that exists already."""


class Writers:
    """What inotify told of each trigger file (on the observer thread): created and still being written, or
    complete (closed, renamed into place, a hard link). Not only the look for a file itself waits for its
    close: every look at the folder (after a run, for another file) leaves a file being written alone, and
    one so new that its events have not been heard yet, so a slow writer's reason is never cut short. A
    file left is looked at again when its close is heard; after :data:`UNCLOSED_SECONDS` without a close
    it is taken anyway.

    A writer is told by the "opened" that follows the file's creation at once (the same ``open`` makes both).
    A creation without one is a file found by watchdog's walk of a folder it has just begun to watch (a job's
    folder made a moment ago), whose writer may be long done: no close would come, so it is looked at soon
    and taken as at start, unless so new that its writer may still be at it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._files: dict[str, tuple[Heard, float]] = {}
        """name -> (what was heard, when on the monotonic clock)."""
        self._drop_at = MAX_TRACKED_FILES
        self._lock = threading.Lock()

    def leave(self, entry: os.DirEntry[str]) -> str | None:
        """Why a look should leave ``entry`` for later (``None``: take it). Called on a worker thread."""
        with self._lock:
            heard = self._files.get(entry.name)
        if heard is not None:
            what, at = heard
            since = self._clock.monotonic() - at
            if what is Heard.WRITING:
                return "being written" if since < UNCLOSED_SECONDS else None
            if since < UNHEARD_SECONDS:
                return JUST_CREATED if what is Heard.MADE else None
            # Older news says no more than the file's own age does, and may be of a file gone since: the
            # deletions of the files we take are not heard (see TriggerFolder.remove), so nothing forgets them.
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return None  # gone or unreadable: taking it says so
        if not stat.S_ISREG(info.st_mode):
            return None  # a link is whole when made; folders, FIFOs and devices are refused by the take
        # Nothing heard of it, and it is brand new: its events are still on their way (a busy machine). A
        # file stamped after now (a clock set back, another machine's clock) is not new: holding it back
        # would wait for events that were heard long ago.
        age = self._clock.now().timestamp() - info.st_ctime
        return JUST_CREATED if 0 <= age < UNHEARD_SECONDS else None

    def event_delay(self, event: FileSystemEvent) -> float | None:
        """When to look at the folder after ``event``: now, a little later, or not at all."""
        if event.is_directory:
            return None
        if event.event_type in (EVENT_TYPE_DELETED, EVENT_TYPE_MOVED):
            self._forget(os.fsdecode(event.src_path))  # gone from that name
        if event.event_type == EVENT_TYPE_OPENED:
            return self._opened(os.fsdecode(event.src_path))
        if event.event_type not in CONTENT_EVENTS:
            return None
        # For a move the new name decides: writing ``x.tmp`` and renaming it to ``x`` is the safe way.
        path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path)
        if not is_trigger_name(os.path.basename(path)):
            return None
        if event.event_type == EVENT_TYPE_MODIFIED or (event.event_type == EVENT_TYPE_ATTRIB and self._writing(path)):
            return None  # a writer is mid-way (``touch`` sets the times before its close); its close follows
        if event.event_type in (EVENT_TYPE_CLOSED, EVENT_TYPE_MOVED):
            # Written, or renamed into place whole: no need to look at it first (a burst of renames would cost a
            # stat each, here). Were it gone already, this news of it is too old to matter soon (see leave).
            self._heard(path, Heard.WHOLE)
            return 0
        try:
            info: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            # Gone already: most often a file we just took, whose unlink raises an attrib event (the link
            # count). A look for it would only take whatever else is there, perhaps still half-written.
            self._forget(path)
            return None
        except OSError:  # a folder that cannot be looked into is not "gone": its look must fail, and say so
            info = None
        if event.event_type == EVENT_TYPE_CREATED and _is_new_file(info):
            self._heard(path, Heard.MADE)
            return UNHEARD_SECONDS  # a writer's "opened" comes first; without one, the file is taken then
        if event.event_type == EVENT_TYPE_CREATED:
            self._heard(path, Heard.WHOLE)  # a link to written content
        return 0

    def _opened(self, path: str) -> float | None:
        """A file just made, opened at once: its maker is writing it, so its close is waited for. Any other
        open says nothing: our own read of a file made with no writer comes later (a look leaves a file that
        new alone)."""
        name = os.path.basename(path)
        with self._lock:
            heard = self._files.get(name)
            if heard is None or heard[0] is not Heard.MADE or self._clock.monotonic() - heard[1] >= UNHEARD_SECONDS:
                return None
            self._files[name] = (Heard.WRITING, heard[1])
        return UNCLOSED_SECONDS  # its writer may still be writing: wait for the close

    def _writing(self, path: str) -> bool:
        """Whether a writer is heard writing ``path``: its close brings the look (or the deadline its open set)."""
        with self._lock:
            heard = self._files.get(os.path.basename(path))
        return heard is not None and heard[0] is Heard.WRITING and self._clock.monotonic() - heard[1] < UNCLOSED_SECONDS

    def _heard(self, path: str, what: Heard) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if len(self._files) >= self._drop_at:  # the files taken since, or lost to an inotify overflow
                self._files = {n: h for n, h in self._files.items() if now - h[1] < _MATTERS_FOR[h[0]]}
                self._drop_at = max(MAX_TRACKED_FILES, 2 * len(self._files))
            self._files[os.path.basename(path)] = (what, now)

    def _forget(self, path: str) -> None:
        with self._lock:
            self._files.pop(os.path.basename(path), None)


_MATTERS_FOR = {Heard.MADE: UNHEARD_SECONDS, Heard.WRITING: UNCLOSED_SECONDS, Heard.WHOLE: UNHEARD_SECONDS}
"""How long each news of a file says more than its age (see :meth:`Writers.leave`)."""


def _is_new_file(info: os.stat_result | None) -> bool:
    """Whether ``info`` is of a regular file that a writer has just created, rather than a hard link to content
    that exists already (which gives no close event: nobody writes through the new name)."""
    if info is None or not stat.S_ISREG(info.st_mode):
        return False
    # A link adds a name (st_nlink > 1) and changes only the inode's ctime. A writer sets mtime and ctime
    # together, so ctime past mtime marks a link whose other name is already gone.
    return info.st_nlink == 1 and info.st_ctime_ns <= info.st_mtime_ns
