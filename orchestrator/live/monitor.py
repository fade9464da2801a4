"""Watches the progress file and hands every new, valid version of it to a callback.

Reads are driven by a dirty flag, not a timer: a burst of writes costs one read and adds no delay. A file
that is torn, not JSON, the wrong shape, too big, a directory or gone leaves the last good value in place
and is logged once until a good one comes back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from watchdog.events import EVENT_TYPE_DELETED, FileSystemEvent

from orchestrator.core.streak import Streak
from orchestrator.disk.atomic import InvalidDocument
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.sources.watch import CONTENT_EVENTS, FolderWatch
from orchestrator.sources.watchhub import WatchHub, event_paths

log = logging.getLogger(__name__)


class ProgressMonitor:
    """Watches one progress file. Its folder may hold other jobs' progress files: ``hub`` shares one watch
    of the folder among their monitors, and tells each only of the events about its own file."""

    def __init__(self, progress_file: ProgressFile, on_progress: Callable[[Progress], None], hub: WatchHub) -> None:
        self._file = progress_file
        self._on_progress = on_progress
        target = os.fspath(progress_file.path)
        self.watch = FolderWatch(
            progress_file.path.parent,
            lambda event: _names(event, target),
            "progress",
            hub,
            names=frozenset({progress_file.path.name}),
        )
        self.latest: Progress | None = None
        self._unusable = Streak()

    def start(self) -> None:
        self.watch.start()

    def stop(self) -> None:
        self.watch.stop()

    def read_now(self) -> None:
        """Read the file once, synchronously (at start-up, before the first client connects)."""
        self._read()

    def landed(self, progress: Progress) -> None:
        """The service itself just put ``progress`` in the file: it is the file's now, before its events come
        (until then the view would show what the file held before, behind what the runner reports next). Not
        published: whoever wrote it publishes when it is ready to."""
        self.latest = progress

    async def serve(self) -> None:
        while True:
            await self.watch.changed.wait()
            self.watch.changed.clear()
            self.watch.recover()
            self._read()

    def _read(self) -> None:
        try:
            progress = self._file.read()
        except FileNotFoundError:
            self._trouble("is missing")
            return
        except InvalidDocument as exc:
            self._trouble(exc.why)
            return
        except OSError as exc:
            self._trouble(f"cannot be read ({exc.strerror})")
            return
        if self._unusable.recovered():
            log.info("progress file %s is readable again", self._file.path)
        if progress != self.latest:
            self.latest = progress
            self._on_progress(progress)

    def _trouble(self, why: str) -> None:
        # A missing file before any run is the normal state of a fresh data folder, not a problem: a streak that
        # begins so is not said, nor is its end.
        normal = why == "is missing" and self.latest is None
        if self._unusable.failed(quiet=normal):
            log.warning("progress file %s %s; keeping the last good state", self._file.path, why)
        else:
            # One warning per streak; each further look is only worth a debug line (tests count them).
            log.debug("progress file %s still unusable (%s)", self._file.path, why)


def _names(event: FileSystemEvent, target: str) -> float | None:
    if event.event_type not in CONTENT_EVENTS and event.event_type != EVENT_TYPE_DELETED:
        return None
    return 0 if target in event_paths(event) else None
