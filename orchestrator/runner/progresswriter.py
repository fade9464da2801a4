"""The runner's progress document writer: a latest-value slot written to the progress file one write at a
time, each write held to its end; a failing disk is said once and the news published from memory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from orchestrator.core.events import RunStatus
from orchestrator.core.outlast import outlast_cancel
from orchestrator.core.records import RunRecord
from orchestrator.core.streak import Streak
from orchestrator.disk.atomic import InvalidDocument
from orchestrator.live.progress import Progress, ProgressFile

log = logging.getLogger(__name__)


class ProgressWriter:
    """Holds what the runner last reported and puts it in the progress file."""

    def __init__(self, progress_file: ProgressFile, on_change: Callable[[], None]) -> None:
        self.file = progress_file
        self._on_change = on_change
        self.progress = Progress()
        """What the runner itself last reported (the web sees the file, which the job may also write)."""
        self._dirty = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._writes = Streak()
        self.landed: Callable[[Progress], None] = lambda progress: None
        """Told of what :meth:`land` put in the file: the watchers hear of it later, through the file's events."""

    @property
    def on_disk(self) -> bool:
        """Whether the last write landed; if not, the file is behind and memory is the truth."""
        return not self._writes.failing

    def set(self, progress: Progress) -> None:
        """Latest-value slot: a job printing a thousand lines a second costs one write per loop turn."""
        self.progress = progress
        self._dirty.set()

    async def write_forever(self) -> None:
        self.stage()  # the first run's "running", ready
        try:
            while True:
                await self._dirty.wait()
                await self.flush()
        finally:
            self.file.unstage()

    async def flush(self) -> None:
        # One write at a time: two writes in flight in two threads could land in the wrong order.
        async with self._write_lock:
            if not self._dirty.is_set():
                return
            self._dirty.clear()
            progress = self.progress
            try:
                # Held to its end even if we are cancelled: a write still running in its thread after we let go
                # of the lock could land after the outcome's write and leave the file saying "running".
                await outlast_cancel(asyncio.ensure_future(asyncio.to_thread(self.file.write, progress)))
            except OSError as exc:
                self._failed(exc)
            else:
                self._writes.recovered()

    async def land(self) -> None:
        """Land what was set now, before the caller goes on. On the loop when no write is in flight: one small
        file, not fsynced, costs a fraction of a millisecond there, where a trip to a worker thread costs a
        few on a busy machine (a job's start waits for it). Behind a write in flight, as :meth:`flush`."""
        if self._write_lock.locked():
            await self.flush()
            return
        if not self._dirty.is_set():
            return
        self._dirty.clear()
        progress = self.progress
        try:
            self.file.write(progress, staged=True)
        except OSError as exc:
            self._failed(exc)
        else:
            self._writes.recovered()
            self.landed(progress)

    def stage(self) -> None:
        """Ready the next :meth:`land`'s temp file now (after a spawn, or at start), so that the land before the
        next spawn costs a write and a rename."""
        self.file.stage()

    def _failed(self, exc: OSError) -> None:
        if self._writes.failed():
            log.error("cannot write progress file %s: %s", self.file.path, exc)
        # The file will not carry this news to the watchers: publish it from memory instead.
        self._on_change()

    def last_step(self, run_id: str) -> str:
        """The run's last step, whoever reported it: the file holds the later of our writes (all landed by
        now) and the job's own, if it wrote the file itself."""
        try:
            on_file = self.file.read()
        except (OSError, InvalidDocument):
            on_file = None
        if on_file is not None and on_file.run_id == run_id and on_file.status is RunStatus.RUNNING:
            return on_file.step
        return self.progress.step

    def ended(self, run: RunRecord, *, step: str, percent: float | None = None) -> Progress:
        """The progress document of an ended run (at ``percent``, or as far as it got)."""
        return Progress(
            status=run.status,
            step=step,
            progress=self.progress.progress if percent is None else percent,
            started_at=run.started_at,
            finished_at=run.finished_at,
            run_id=run.run_id,
            trigger=run.source.value,
            error=run.error,
            exit_code=run.exit_code,
        )
