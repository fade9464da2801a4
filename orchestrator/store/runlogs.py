"""Per-run log files: every line the job prints, on stdout or stderr, in ``data/logs/<runId>.log``.

Each line is ``HH:MM:SS.mmm out|err <text>`` (UTC). The file is never held open: lines wait in memory and are
appended (open, write, close) in batches on a worker thread, at most every :data:`FLUSH_SECONDS` (sooner when a
lot is waiting), so a job printing a million lines costs a few hundred writes, and the data folder can be
remounted read-only at any moment (a file open for writing would make that fail with EBUSY).

The log as readers see it is the file followed by what still waits in memory: byte offsets are the same in
both, so a live reader never sees a line twice or misses one. Bounds, each announced by one marker line:

- a log stops growing at ``max_bytes`` (50 MiB): a job printing forever cannot fill the disk;
- while the disk works but lags behind, the job's output is read no faster than it is written (the job waits
  on its pipe), once a quarter of ``max_pending`` waits;
- at most ``max_pending`` bytes (all logs together) wait in memory: past that (the disk refuses writes) new
  lines are dropped and counted until the disk takes them again; the job is never held up by a failing disk.

A failing disk is logged once, never stops a run, and the lines written again once it takes them.

No symlink in the data folder is followed (see orchestrator/disk/datadir.py): the logs folder is opened with
``O_DIRECTORY | O_NOFOLLOW`` and each log through its descriptor with ``O_NOFOLLOW``. A logs folder found to be a
symlink is replaced by a real folder; a log file found to be one (or gone) mid-run is replaced by a fresh
owner-only file whose first line, padded to the length that was written before, says that those bytes are lost:
so every offset a reader holds still points at the same line, and the job's later lines land in the new file.
Each is said once in the service's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import stat
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from orchestrator.core.clock import Clock
from orchestrator.core.outlast import outlast_cancel
from orchestrator.core.records import RunRecord
from orchestrator.disk.datadir import ensure_folder, make_data_folder, open_file, open_folder, remove_symlink
from orchestrator.job.protocol import MARK, Output, Pipe

log = logging.getLogger(__name__)

LOGS_DIR_NAME = "logs"
MAX_LOG_BYTES = 50 * 1024 * 1024
MAX_PENDING_BYTES = 4 * 1024 * 1024
FLUSH_SECONDS = 0.2
"""Least time between two batches: a chatty job costs at most five writes a second."""
EARLY_FLUSH_BYTES = 256 * 1024
"""A batch this big is written at once, without waiting for :data:`FLUSH_SECONDS`."""
RETRY_SECONDS = 2.0
"""Between two tries while the disk refuses writes."""
LOG_NAME = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]+\.log$")
"""What a run's log file is called; nothing else in the folder is ever removed."""
MARKER_ROOM = 256
"""Kept free below ``max_bytes`` for the cut marker: a cut log is never bigger than the limit."""
T = TypeVar("T")


class RunLog:
    """One run's log: the bytes on disk (``flushed``), a batch being written, and what waits in memory.
    Changed on the event loop only; the worker thread gets its own copy of the batch."""

    def __init__(self, run_id: str, path: Path) -> None:
        self.run_id = run_id
        self.path = path
        self.flushed = 0
        self.in_flight = b""
        self.pending = bytearray()
        """One buffer, not a list of lines: a reader's slice of it costs the bytes it takes, not the lines waiting."""
        self.created = False
        self.record: RunRecord | None = None
        """The run's final record once it ended (sent as the live stream's ``end``)."""
        self.cut_lines = 0
        self.cut_at = 0
        """The log's size when it was cut (the marker line follows)."""
        self.dropped_lines = 0
        self._news: asyncio.Future[None] | None = None

    @property
    def pending_bytes(self) -> int:
        return len(self.pending)

    @property
    def size(self) -> int:
        """Bytes of the log so far, on disk or not."""
        return self.flushed + len(self.in_flight) + len(self.pending)

    @property
    def ended(self) -> bool:
        return self.record is not None

    def add(self, line: bytes) -> None:
        self.pending += line
        self.tell()

    def tell(self) -> None:
        """Wake the readers waiting for more."""
        if self._news is not None and not self._news.done():
            self._news.set_result(None)

    async def wait_beyond(self, offset: int) -> None:
        """Return once the log holds more than ``offset`` bytes, or the run has ended."""
        while self.size <= offset and not self.ended:
            if self._news is None or self._news.done():
                self._news = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._news)  # shared by every reader: one leaving must not cancel it

    def read(self, offset: int, limit: int) -> tuple[bytes, tuple[int, int] | None]:
        """Bytes ``offset`` .. ``offset + limit`` that are in memory, and the (start, end) range before them
        that must be read from the file (``None`` if none): the caller reads that part off the loop."""
        end = min(self.size, offset + limit)
        from_file = (offset, min(end, self.flushed)) if offset < self.flushed else None
        # Two slices, whatever the number of lines waiting: every live reader calls this for every event.
        start = max(offset, self.flushed) - self.flushed
        stop = end - self.flushed
        flying = len(self.in_flight)
        memory = self.in_flight[start:stop] if start < flying else b""
        if stop > flying:
            memory += bytes(self.pending[max(0, start - flying) : stop - flying])
        return memory, from_file


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
        self.folder = data_dir / LOGS_DIR_NAME
        self._clock = clock
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self._logs: dict[str, RunLog] = {}
        """Open logs, and ended ones whose last lines are not on disk yet: readers find them here."""
        self._pending = 0
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        """Set when :data:`EARLY_FLUSH_BYTES` wait: the next batch goes at once."""
        self._drained: asyncio.Future[None] | None = None
        """Resolved when a batch has been written: the job's output is read on (backpressure)."""
        self._io = asyncio.Lock()
        """Held while a batch is written or old logs are removed: a removed log is never written again."""
        self._flusher: asyncio.Task[None] | None = None
        self._failing: OSError | None = None
        self.writes = 0
        """Batches written (for the benchmark and the tests)."""
        self.peak_pending = 0
        self._stamp_key = -1
        self._stamp_text = ""
        """The most bytes that waited in memory at once (for the benchmark and the tests)."""
        self._said: set[str] = set()
        """Symlinks replaced in the logs folder (and logs found gone), each said once."""

    # ------------------------------------------------------------------------------------- the runner's side
    def relative_path(self, run_id: str) -> str:
        """Where ``run_id``'s log is, relative to the data folder (as the history records it)."""
        return f"{LOGS_DIR_NAME}/{run_id}.log"

    def open(self, run_id: str) -> Output:
        """Start ``run_id``'s log; the returned callable takes each line the job prints."""
        run_log = RunLog(run_id, self.data_dir / self.relative_path(run_id))
        self._logs[run_id] = run_log
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="run-log-writer")
        return lambda pipe, text: self._write(run_log, pipe, text)

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
            self._dirty.set()  # written even if empty: a finished run's log exists

    def get(self, run_id: str) -> RunLog | None:
        """The live (or not yet fully written) log of ``run_id``; ``None`` means: the file is the whole log."""
        return self._logs.get(run_id)

    def path_of(self, relative: str | None) -> Path | None:
        """The file a history's ``log_path`` names, if it is a run log inside the logs folder (else ``None``)."""
        if not relative or "/" not in relative:
            return None
        folder, name = relative.split("/", 1)
        if folder != LOGS_DIR_NAME or not LOG_NAME.match(name):
            return None
        return self.folder / name

    async def remove(self, run_ids: Collection[str], work: Callable[[], T]) -> T:
        """Forget the ended logs of ``run_ids`` (what of them waits in memory goes too), then run ``work`` (which
        removes files) on a worker thread while no batch is being written."""
        async with self._io:
            for run_id in run_ids:
                run_log = self._logs.get(run_id)
                if run_log is not None and run_log.ended:
                    self._pending -= run_log.pending_bytes
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
            log.error("%d bytes of run logs could not be written before the stop: %s", left, self._failing)

    # ------------------------------------------------------------------------------------------- writing
    def _write(self, run_log: RunLog, pipe: Pipe, text: str) -> Awaitable[None] | None:
        """Take one line; an awaitable back means: read no more output until it is done (the disk lags)."""
        if run_log.cut_lines or run_log.ended:
            run_log.cut_lines += 1
            return None
        line = f"{self._stamp()} {pipe} {text}\n".encode(errors="replace")
        if run_log.size + len(line) > self.max_bytes - MARKER_ROOM:
            # The marker names the size the log really has, on the pipe that overflowed, and still fits.
            run_log.cut_lines, run_log.cut_at = 1, run_log.size
            cut = f"log cut at {run_log.size} bytes (limit {self.max_bytes}): this line and later ones are not kept"
            self._queue(run_log, self._marker(cut, pipe))
            return None
        if self._pending + len(line) > self.max_pending:
            run_log.dropped_lines += 1
            return None
        self._end_dropping(run_log)
        self._queue(run_log, line)
        if self._failing is not None or self._pending < self.max_pending // 4:
            return None
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._drained)  # shared: a reader that is cancelled must not cancel it

    def _end_dropping(self, run_log: RunLog) -> None:
        if run_log.dropped_lines:
            why = f"the disk refused writes ({self._failing})" if self._failing else "the disk could not keep up"
            self._queue(run_log, self._marker(f"{run_log.dropped_lines} lines dropped: {why}"))
            run_log.dropped_lines = 0

    def _marker(self, text: str, pipe: Pipe = Pipe.ERR) -> bytes:
        return f"{self._stamp()} {pipe} {MARK} {text}\n".encode()

    def _stamp(self) -> str:
        """``HH:MM:SS.mmm`` of now (UTC), formatted once per millisecond: a chatty job prints many per one."""
        now = self._clock.now()
        key = ((now.hour * 60 + now.minute) * 60 + now.second) * 1000 + now.microsecond // 1000
        if key != self._stamp_key:
            self._stamp_key, self._stamp_text = key, f"{now:%H:%M:%S}.{now.microsecond // 1000:03d}"
        return self._stamp_text

    def _queue(self, run_log: RunLog, line: bytes) -> None:
        run_log.add(line)
        self._pending += len(line)
        self.peak_pending = max(self.peak_pending, self._pending)
        if self._pending >= EARLY_FLUSH_BYTES:
            self._urgent.set()
        self._dirty.set()

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last = -FLUSH_SECONDS
        while True:
            await self._dirty.wait()
            # A rate limit on writes, not a poll: this sleeps only while lines wait to be written.
            pause = (RETRY_SECONDS if self._failing else FLUSH_SECONDS) - (loop.time() - last)
            if pause > 0 and self._failing:
                await asyncio.sleep(pause)
            elif pause > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._urgent.wait()  # enough waits for a batch of its own: no need to wait longer
            self._urgent.clear()
            last = loop.time()
            await outlast_cancel(asyncio.ensure_future(self.flush()))  # a batch half-recorded would repeat

    async def flush(self) -> None:
        """Write what waits now, without waiting for the next batch (the stop, and tests)."""
        async with self._io:
            await self._flush_batches()

    async def _flush_batches(self) -> None:
        """One batch per log that has news, all written in one trip to a worker thread."""
        self._dirty.clear()
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
            self._let_readers_on()
            return
        stamp = self._stamp()
        jobs = [
            _Append(self.data_dir, run_log.path.name, data, not run_log.created, run_log.flushed, stamp)
            for run_log, data in batches
        ]
        results = await asyncio.to_thread(_append_all, jobs)
        self.writes += len(batches)
        error: OSError | None = None
        for (run_log, data), (written, failure, replaced) in zip(batches, results, strict=True):
            self._say_replaced(run_log, replaced)
            run_log.in_flight = b""
            run_log.flushed += written
            self._pending -= written
            if failure is None:
                run_log.created = True
            else:
                error = failure
                run_log.created = run_log.created or written > 0
                rest = data[written:]
                if rest:  # back in front of what came meanwhile, to be tried again
                    run_log.pending[0:0] = rest
                self._dirty.set()
            if run_log.ended and not run_log.pending and failure is None:
                self._logs.pop(run_log.run_id, None)
        self._disk_state(error)
        self._let_readers_on()

    def _say_replaced(self, run_log: RunLog, replaced: list[str]) -> None:
        for what in replaced:
            if what not in self._said:
                self._said.add(what)
                log.warning("run %s: %s", run_log.run_id, what)

    def _let_readers_on(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _disk_state(self, error: OSError | None) -> None:
        if error is not None and self._failing is None:
            log.error(
                "cannot write run logs in %s: %s; lines wait in memory (up to %d KiB) until the disk takes them",
                self.folder,
                error,
                self.max_pending // 1024,
            )
        elif error is None and self._failing is not None:
            log.info("run logs in %s are written again", self.folder)
        self._failing = error


@dataclass(frozen=True, slots=True)
class _Append:
    """One batch for one log, as the worker thread gets it."""

    data_dir: Path
    name: str
    data: bytes
    first: bool
    """Nothing of the log is on disk yet: the file is made (or emptied)."""
    flushed: int
    """Bytes of the log already written (what a fresh file must make room for)."""
    stamp: str


def _append_all(jobs: list[_Append]) -> list[tuple[int, OSError | None, list[str]]]:
    return [_append(job) for job in jobs]


def _append(job: _Append) -> tuple[int, OSError | None, list[str]]:
    """Append ``job.data`` (the first time: replace the file); how many bytes landed, the error if not all, and
    what symlinks were found and replaced on the way (to be said once)."""
    written = 0
    replaced: list[str] = []
    try:
        folder = _logs_folder(job.data_dir, replaced)
        try:
            fd = _open_log(folder, job, replaced)
            try:
                view = memoryview(job.data)
                while written < len(job.data):
                    written += os.write(fd, view[written:])
            finally:
                os.close(fd)
        finally:
            os.close(folder)
    except OSError as exc:
        return written, exc, replaced
    return written, None, replaced


def _logs_folder(data_dir: Path, replaced: list[str]) -> int:
    try:
        top = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        make_data_folder(data_dir)  # the data folder was removed
        top = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        folder, removed = ensure_folder(LOGS_DIR_NAME, dir_fd=top)
    finally:
        os.close(top)
    if removed is not None:
        replaced.append(
            f"the logs folder {data_dir / LOGS_DIR_NAME} was a symlink to {removed!r}; not followed: replaced it "
            "with a real folder (its target is left as it is)"
        )
    return folder


def _open_log(folder: int, job: _Append, replaced: list[str]) -> int:
    flags = os.O_WRONLY | os.O_APPEND
    if job.first:
        try:
            return open_file(job.name, flags | os.O_CREAT | os.O_TRUNC, dir_fd=folder)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        target = remove_symlink(job.name, dir_fd=folder)
        replaced.append(f"its log file {job.name} was a symlink to {target!r}; not followed: replaced it")
        return open_file(job.name, flags | os.O_CREAT | os.O_EXCL, dir_fd=folder)
    try:
        return open_file(job.name, flags, dir_fd=folder)
    except FileNotFoundError:
        why = "gone (removed, or its folder was)"
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        why = f"replaced by a symlink (to {remove_symlink(job.name, dir_fd=folder)!r}), which was removed, not followed"
    replaced.append(
        f"its log file {job.name} was {why}; the next lines go to a fresh file, whose first line says that the "
        f"{job.flushed} bytes written before are lost"
    )
    fd = open_file(job.name, flags | os.O_CREAT | os.O_EXCL, dir_fd=folder)
    try:
        _write_lost(
            fd,
            job.flushed,
            f"{job.stamp} {Pipe.ERR} {MARK} the first {job.flushed} bytes of this log are lost: its file was {why}",
        )
    except OSError:
        # Half a marker would shift every later line: the next try starts over.
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(job.name, dir_fd=folder)
        raise
    return fd


def _write_lost(fd: int, size: int, text: str) -> None:
    """A line of exactly ``size`` bytes saying ``text``, so that readers' offsets still point at the lines that
    follow. Its padding is a hole (read back as spaces, see :func:`read_range`), not written bytes: a log
    removed to free a full disk (50 MiB at most) must not take the space back at once."""
    if size <= 0:
        return
    line = text.encode(errors="replace")[: size - 1]
    done = 0
    while done < len(line):
        done += os.write(fd, line[done:])
    os.ftruncate(fd, size - 1)  # the file is opened O_APPEND: the newline lands at size - 1
    os.write(fd, b"\n")


def read_range(path: Path, start: int, end: int) -> bytes:
    """Bytes ``start`` .. ``end`` of a log file (for a worker thread); a symlink is not followed (``OSError``)."""
    with os.fdopen(_open_for_reading(path), "rb") as file:
        file.seek(start)
        # NULs are the padding of a lost-bytes line (a hole), or a job's own: either way shown as spaces.
        return file.read(max(0, end - start)).replace(b"\0", b" ")


def log_size(path: Path) -> int:
    """The size of a log file, without following a symlink (``OSError``) to the log or its folder."""
    fd = _open_for_reading(path)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _open_for_reading(path: Path) -> int:
    folder = open_folder(path.parent)
    try:
        fd = open_file(path.name, os.O_RDONLY, dir_fd=folder)
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def list_logs(folder: Path) -> list[str]:
    """Names of the run logs in ``folder``, listed without following a symlink to it (``OSError``; a missing
    folder is ``FileNotFoundError``)."""
    fd = open_folder(folder)
    try:
        with os.scandir(fd) as listing:
            return [entry.name for entry in listing if LOG_NAME.match(entry.name)]
    finally:
        os.close(fd)


def remove_logs(folder: Path, names: list[str]) -> None:
    """Remove these files from ``folder`` (through its descriptor: a symlink to the folder is not followed)."""
    if not names:
        return
    try:
        fd = open_folder(folder)
    except FileNotFoundError:
        return  # removed with everything in it: nothing left to remove
    try:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
