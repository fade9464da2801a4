"""Per-run logs, captured live: every line the job prints, on stdout or stderr, on its way to
``data/logs/<runId>.log`` (the files themselves: :mod:`orchestrator.store.logfiles`).

Each line is ``HH:MM:SS.mmm out|err <text>`` (UTC). The file is never held open: lines wait in memory and are
appended (open, write, close) in batches on a worker thread, at most every :data:`FLUSH_SECONDS` (sooner when a
lot is waiting), so a job printing a million lines costs a few hundred writes, and the data folder can be
remounted read-only at any moment (a file open for writing would make that fail with EBUSY).

The log as readers see it is the file followed by what still waits in memory (:class:`RunLog`): byte offsets are
the same in both, so a live reader never sees a line twice or misses one. Bounds, each announced by one marker
line:

- a log stops growing at ``max_bytes`` (50 MiB): a job printing forever cannot fill the disk;
- while the disk works but lags behind, the job's output is read no faster than it is written (the job waits
  on its pipe), once a quarter of ``max_pending`` waits;
- at most ``max_pending`` bytes (all logs together) wait in memory: past that (the disk refuses writes) new
  lines are dropped and counted until the disk takes them again; the job is never held up by a failing disk.

A failing disk is logged once, never stops a run, and the lines written again once it takes them. A log file
replaced by a symlink, or gone, mid-run is said once in the service's log (see the files' module for what is
done about it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import TypeVar

from orchestrator.core.clock import Clock
from orchestrator.core.outlast import outlast_cancel
from orchestrator.core.records import RunRecord
from orchestrator.job.protocol import MARK, Pipe
from orchestrator.store.api import RunLogs as LogStore
from orchestrator.store.livelog import LineStamps, RunLog, Waiting
from orchestrator.store.logfiles import (
    LOG_NAME,
    LOGS_DIR_NAME,
    Batch,
    LogFiles,
    append_all,
    list_logs,
    log_size,
    read_range,
    remove_logs,
)

log = logging.getLogger(__name__)

__all__ = [
    "LOGS_DIR_NAME",
    "LOG_NAME",
    "MAX_LOG_BYTES",
    "MAX_PENDING_BYTES",
    "RunLog",
    "RunLogs",
    "list_logs",
    "log_size",
    "read_range",
    "remove_logs",
]

MAX_LOG_BYTES = 50 * 1024 * 1024
MAX_PENDING_BYTES = 4 * 1024 * 1024
FLUSH_SECONDS = 0.2
"""Least time between two batches: a chatty job costs at most five writes a second."""
EARLY_FLUSH_BYTES = 256 * 1024
"""A batch this big is written at once, without waiting for :data:`FLUSH_SECONDS`."""
RETRY_SECONDS = 2.0
"""Between two tries while the disk refuses writes."""
MARKER_ROOM = 256
"""Kept free below ``max_bytes`` for the cut marker: a cut log is never bigger than the limit."""
T = TypeVar("T")


class RunLogs:
    """The run logs under ``data_dir/logs``; the runner opens one per run and closes it with the outcome."""

    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        *,
        max_bytes: int = MAX_LOG_BYTES,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        self.data_dir = data_dir
        self.files: LogStore = LogFiles(data_dir)
        self.folder = self.files.folder
        self._stamps = LineStamps(clock)
        self.max_bytes = max_bytes
        self._logs: dict[str, RunLog] = {}
        """Open logs, and ended ones whose last lines are not on disk yet: readers find them here."""
        self._waiting = Waiting(max_pending, EARLY_FLUSH_BYTES)
        self._io = asyncio.Lock()
        """Held while a batch is written or old logs are removed: a removed log is never written again."""
        self._flusher: asyncio.Task[None] | None = None
        self.writes = 0  # batches written (for the benchmark and the tests)
        self._disk = DiskNews(self.folder, max_pending)

    @property
    def peak_pending(self) -> int:
        """The most bytes that waited in memory at once (for the benchmark and the tests)."""
        return self._waiting.peak

    # ------------------------------------------------------------------------------------- the runner's side
    def relative_path(self, run_id: str) -> str:
        """Where ``run_id``'s log is, relative to the data folder (as the history records it)."""
        return self.files.relative_path(run_id)

    def open(self, run_id: str) -> LogInput:
        """Start ``run_id``'s log; the returned callable takes each line the job prints."""
        run_log = RunLog(run_id, self.data_dir / self.relative_path(run_id))
        self._logs[run_id] = run_log
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="run-log-writer")
        return LogInput(self, run_log)

    def close(self, run: RunRecord) -> None:
        """The run ended: its last lines are written (on the worker thread, soon) and live readers are told."""
        run_log = self._logs.get(run.run_id)
        if run_log is None or run_log.ended:
            return
        self._end_dropping(run_log)
        if run_log.cut_lines > 1:
            dropped = run_log.cut_lines - 1
            log.warning("run %s: log cut at %d bytes; %d later lines dropped", run.run_id, run_log.cut_at, dropped)
        run_log.record = run
        run_log.tell()
        if run_log.created and not run_log.pending and not run_log.in_flight:
            del self._logs[run.run_id]  # all on disk already: the file is the whole log from now on
        else:
            self._waiting.dirty.set()  # written even if empty: a finished run's log exists
            self._waiting.urgent.set()  # at once: a finished run's log is whole on disk as soon as it can be

    def get(self, run_id: str) -> RunLog | None:
        """The live (or not yet fully written) log of ``run_id``; ``None`` means: the file is the whole log."""
        return self._logs.get(run_id)

    def path_of(self, relative: str | None) -> Path | None:
        """The file a history's ``log_path`` names, if it is a run log inside the logs folder (else ``None``)."""
        return self.files.path_of(relative)

    async def remove(self, run_ids: Collection[str], work: Callable[[], T]) -> T:
        """Forget the ended logs of ``run_ids`` (what of them waits in memory goes too), then run ``work`` (which
        removes files) on a worker thread while no batch is being written."""
        async with self._io:
            for run_id in run_ids:
                run_log = self._logs.get(run_id)
                if run_log is not None and run_log.ended:
                    self._waiting.bytes -= run_log.pending_bytes
                    del self._logs[run_id]
            return await asyncio.to_thread(work)

    async def stop(self) -> None:
        """Write what still waits (one last try), then stop the writer."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
        left = sum(run_log.size - run_log.flushed for run_log in self._logs.values())
        if left:
            log.error("%d bytes of run logs could not be written before the stop: %s", left, self._disk.failing)

    # ------------------------------------------------------------------------------------------- writing
    def write(self, run_log: RunLog, pipe: Pipe, text: str) -> Awaitable[None] | None:
        """Take one line; an awaitable back means: read no more output until it is done (the disk lags)."""
        return self.write_block(run_log, pipe, f"{text}\n".encode(errors="replace"))

    def write_block(self, run_log: RunLog, pipe: Pipe, block: bytes) -> Awaitable[None] | None:
        """Take a block of whole lines (each ending in a newline): one stamp, one copy, and one wake-up of the
        live readers for all of them; line by line when that would reach a bound."""
        if run_log.cut_lines or run_log.ended:
            run_log.cut_lines += block.count(b"\n")
            return None
        head = f"{self._stamps.now()} {pipe} ".encode()
        data = head + block[:-1].replace(b"\n", b"\n" + head) + b"\n"
        if run_log.size + len(data) <= self.max_bytes - MARKER_ROOM and self._waiting.fits(len(data)):
            self._end_dropping(run_log)
            self._queue(run_log, data)
        else:
            for line in block.split(b"\n")[:-1]:
                self._line(run_log, pipe, head + line + b"\n")
        return self._waiting.hold(self._disk.failing is not None)

    def _line(self, run_log: RunLog, pipe: Pipe, line: bytes) -> None:
        if run_log.cut_lines:
            run_log.cut_lines += 1
        elif run_log.size + len(line) > self.max_bytes - MARKER_ROOM:
            # The marker names the size the log really has, on the pipe that overflowed, and still fits.
            run_log.cut_lines, run_log.cut_at = 1, run_log.size
            cut = f"log cut at {run_log.size} bytes (limit {self.max_bytes}): this line and later ones are not kept"
            self._queue(run_log, self._marker(cut, pipe))
        elif not self._waiting.fits(len(line)):
            run_log.dropped_lines += 1
        else:
            self._end_dropping(run_log)
            self._queue(run_log, line)

    def _end_dropping(self, run_log: RunLog) -> None:
        if run_log.dropped_lines:
            why = (
                f"the disk refused writes ({self._disk.failing})"
                if self._disk.failing
                else "the disk could not keep up"
            )
            self._queue(run_log, self._marker(f"{run_log.dropped_lines} lines dropped: {why}"))
            run_log.dropped_lines = 0

    def _marker(self, text: str, pipe: Pipe = Pipe.ERR) -> bytes:
        return f"{self._stamps.now()} {pipe} {MARK} {text}\n".encode()

    def _queue(self, run_log: RunLog, line: bytes) -> None:
        run_log.add(line)
        self._waiting.add(len(line))

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last = -FLUSH_SECONDS
        while True:
            await self._waiting.dirty.wait()
            # A rate limit on writes, not a poll: this sleeps only while lines wait to be written.
            pause = (RETRY_SECONDS if self._disk.failing else FLUSH_SECONDS) - (loop.time() - last)
            if pause > 0 and self._disk.failing:
                await asyncio.sleep(pause)
            elif pause > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._waiting.urgent.wait()  # enough waits for a batch of its own: no need to wait longer
            self._waiting.urgent.clear()
            last = loop.time()
            await outlast_cancel(asyncio.ensure_future(self.flush()))  # a batch half-recorded would repeat

    async def flush(self) -> None:
        """Write what waits now, without waiting for the next batch (the stop, and tests)."""
        async with self._io:
            await self._flush_batches()

    async def _flush_batches(self) -> None:
        """One batch per log that has news, all written in one trip to a worker thread."""
        self._waiting.dirty.clear()
        batches: list[tuple[RunLog, bytes]] = []
        for run_log in list(self._logs.values()):
            if run_log.ended and run_log.created and not run_log.pending and not run_log.in_flight:
                del self._logs[run_log.run_id]  # all on disk: the file is the whole log from now on
                continue
            if run_log.pending or (run_log.ended and not run_log.created):
                run_log.in_flight = bytes(run_log.pending)
                run_log.pending.clear()
                batches.append((run_log, run_log.in_flight))
        if not batches:
            self._waiting.release()
            return
        stamp = self._stamps.now()
        jobs = [
            Batch(self.data_dir, run_log.path.name, data, not run_log.created, run_log.flushed, stamp)
            for run_log, data in batches
        ]
        results = await asyncio.to_thread(append_all, jobs)
        self.writes += len(batches)
        error: OSError | None = None
        for (run_log, data), (written, failure, replaced) in zip(batches, results, strict=True):
            self._disk.replaced(run_log.run_id, replaced)
            run_log.landed(data, written, failure)
            self._waiting.bytes -= written
            if failure is not None:
                error = failure
                self._waiting.dirty.set()
            if run_log.ended and not run_log.pending and failure is None:
                self._logs.pop(run_log.run_id, None)
        self._disk.batch_done(error)
        self._waiting.release()


class LogInput:
    """What a run's job writes its lines to (:meth:`RunLogs.open`): one line at a time, or a block of them."""

    __slots__ = ("_log", "_logs")

    def __init__(self, logs: RunLogs, run_log: RunLog) -> None:
        self._logs, self._log = logs, run_log

    def __call__(self, pipe: Pipe, text: str) -> Awaitable[None] | None:
        return self._logs.write(self._log, pipe, text)

    def lines(self, pipe: Pipe, block: bytes) -> Awaitable[None] | None:
        return self._logs.write_block(self._log, pipe, block)


class DiskNews:
    """What the disk did with the run logs, each thing said once: a disk that refuses writes (and takes them
    again), and symlinks or vanished files found in the logs folder."""

    def __init__(self, folder: Path, max_pending: int) -> None:
        self.folder = folder
        self.max_pending = max_pending
        self.failing: OSError | None = None
        self._said: set[str] = set()

    def replaced(self, run_id: str, replaced: list[str]) -> None:
        for what in replaced:
            if what not in self._said:
                self._said.add(what)
                log.warning("run %s: %s", run_id, what)

    def batch_done(self, error: OSError | None) -> None:
        if error is not None and self.failing is None:
            log.error(
                "cannot write run logs in %s: %s; lines wait in memory (up to %d KiB) until the disk takes them",
                self.folder,
                error,
                self.max_pending // 1024,
            )
        elif error is None and self.failing is not None:
            log.info("run logs in %s are written again", self.folder)
        self.failing = error
