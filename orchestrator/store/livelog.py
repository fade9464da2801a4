"""One run's log as the live capture holds it: the bytes on disk, a batch on its way there, and what waits in
memory, read by byte offset as one log (:class:`RunLog`); the time stamps its lines carry; and what waits in
memory of every log (:class:`Waiting`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from orchestrator.core.clock import Clock
from orchestrator.core.records import RunRecord


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
        if end <= self.flushed:
            return b"", from_file  # all on disk (a slice up to a negative stop would take a batch in flight)
        # Two slices, whatever the number of lines waiting: every live reader calls this for every event.
        start = max(offset, self.flushed) - self.flushed
        stop = end - self.flushed
        flying = len(self.in_flight)
        memory = self.in_flight[start:stop] if start < flying else b""
        if stop > flying:
            memory += bytes(self.pending[max(0, start - flying) : stop - flying])
        return memory, from_file

    def landed(self, data: bytes, written: int, failure: OSError | None) -> None:
        """A batch of ``data`` came back from the disk: ``written`` bytes of it landed; the rest (``failure``)
        goes back in front of what came meanwhile, to be tried again."""
        self.in_flight = b""
        self.flushed += written
        if failure is None:
            self.created = True
            return
        self.created = self.created or written > 0
        rest = data[written:]
        if rest:
            self.pending[0:0] = rest


class LineStamps:
    """``HH:MM:SS.mmm`` of now (UTC) for each line, formatted once per millisecond: a chatty job prints many
    lines per one."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._key = -1
        self._text = ""

    def now(self) -> str:
        now = self._clock.now()
        key = ((now.hour * 60 + now.minute) * 60 + now.second) * 1000 + now.microsecond // 1000
        if key != self._key:
            self._key, self._text = key, f"{now:%H:%M:%S}.{now.microsecond // 1000:03d}"
        return self._text


class Waiting:
    """The bytes of every log that wait in memory: their bound, the writer's wake-ups, and the hold on the jobs'
    output while the disk lags."""

    def __init__(self, limit: int, urgent_bytes: int) -> None:
        self.limit = limit
        self.urgent_bytes = urgent_bytes
        self.bytes = 0
        self.peak = 0
        """The most bytes that waited at once (for the benchmark and the tests)."""
        self.dirty = asyncio.Event()
        self.urgent = asyncio.Event()
        """Set when ``urgent_bytes`` wait: the next batch goes at once."""
        self._drained: asyncio.Future[None] | None = None
        """Resolved when a batch has been written: the job's output is read on (backpressure)."""

    def fits(self, size: int) -> bool:
        return self.bytes + size <= self.limit

    def add(self, size: int) -> None:
        self.bytes += size
        self.peak = max(self.peak, self.bytes)
        if self.bytes >= self.urgent_bytes:
            self.urgent.set()
        self.dirty.set()

    def hold(self, disk_failing: bool) -> Awaitable[None] | None:
        """What a job's output waits for before it is read on: a batch written, while the disk works but lags
        (a quarter of the bound waits); ``None``: read on."""
        if disk_failing or self.bytes < self.limit // 4:
            return None
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._drained)  # shared: a reader that is cancelled must not cancel it

    def release(self) -> None:
        """A batch was written (or there was none): the jobs' output is read on."""
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
