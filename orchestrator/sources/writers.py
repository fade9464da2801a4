"""What inotify told of each trigger file: a file still being written is left for its writer's close."""

from __future__ import annotations

import os
import stat
import threading

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
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
"""Files tracked before the ones heard of more than :data:`UNCLOSED_SECONDS` ago are dropped."""
UNHEARD_SECONDS = 0.25
JUST_CREATED = "just created"
"""A file this new that no event has been heard for yet is left for the next look (which its events bring)."""


class Writers:
    """What inotify told of each trigger file (on the observer thread): created and still being written, or
    complete (closed, renamed into place, a hard link). Not only the look for a file itself waits for its
    close: every look at the folder (after a run, for another file) leaves a file being written alone, and
    one so new that its events have not been heard yet, so a slow writer's reason is never cut short. A
    file left is looked at again when its close is heard; after :data:`UNCLOSED_SECONDS` without a close
    it is taken anyway."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._files: dict[str, tuple[bool, float]] = {}
        """name -> (still being written, when heard on the monotonic clock)."""
        self._lock = threading.Lock()

    def leave(self, entry: os.DirEntry[str]) -> str | None:
        """Why a look should leave ``entry`` for later (``None``: take it). Called on a worker thread."""
        with self._lock:
            heard = self._files.get(entry.name)
        if heard is not None:
            writing, at = heard
            return "being written" if writing and self._clock.monotonic() - at < UNCLOSED_SECONDS else None
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
        if event.event_type not in CONTENT_EVENTS:
            return None
        # For a move the new name decides: writing ``x.tmp`` and renaming it to ``x`` is the safe way.
        path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path)
        if not is_trigger_name(os.path.basename(path)):
            return None
        if event.event_type == EVENT_TYPE_MODIFIED:
            return None  # a writer is mid-way; its close follows
        if _gone(path):
            # Gone already: most often a file we just took, whose unlink raises an attrib event (the link
            # count). A look for it would only take whatever else is there, perhaps still half-written.
            self._forget(path)
            return None
        if event.event_type == EVENT_TYPE_CREATED and _is_new_file(path):
            self._heard(path, writing=True)
            return UNCLOSED_SECONDS  # its writer may still be writing: wait for the close
        if event.event_type in (EVENT_TYPE_CLOSED, EVENT_TYPE_MOVED, EVENT_TYPE_CREATED):
            self._heard(path, writing=False)  # written, renamed into place whole, or a link to written content
        return 0

    def _heard(self, path: str, *, writing: bool) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if len(self._files) >= MAX_TRACKED_FILES:  # deletes lost (an inotify overflow): forget the old
                self._files = {n: h for n, h in self._files.items() if now - h[1] < UNCLOSED_SECONDS}
            self._files[os.path.basename(path)] = (writing, now)

    def _forget(self, path: str) -> None:
        with self._lock:
            self._files.pop(os.path.basename(path), None)


def _gone(path: str) -> bool:
    """Known to be gone. A folder that cannot be looked into is not "gone": its look must fail, and say so."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _is_new_file(path: str) -> bool:
    """Whether ``path`` is a regular file that a writer has just created, rather than a hard link to content
    that exists already (which gives no close event: nobody writes through the new name)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    # A link adds a name (st_nlink > 1) and changes only the inode's ctime. A writer sets mtime and ctime
    # together, so ctime past mtime marks a link whose other name is already gone.
    return info.st_nlink == 1 and info.st_ctime_ns <= info.st_mtime_ns
