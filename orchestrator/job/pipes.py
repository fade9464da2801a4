"""Reading a job's pipe: a block of whole lines at a time (:mod:`orchestrator.job.linecut`), lazily.

A reader that takes every write as it comes costs the job a wake-up of the service per write: a job printing a
line per write spends a third of its time on them. So the pipe is made big (:data:`PIPE_BYTES`) and, after a
small read, left alone for :data:`LULL_SECONDS`: the job's writes land in the pipe meanwhile, without waking
anyone, and the next read takes them all. A big read (half what one read takes, or half the pipe) is followed
by the next at once: a job printing faster than that is never held up by a full pipe because of the lull.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from orchestrator.job.linecut import LineCutter, lines_of
from orchestrator.job.protocol import BlockOutput, Output, Pipe

PIPE_BYTES = 1024 * 1024
"""What a job's pipe is made to hold (Linux's default most for a user, ``/proc/sys/fs/pipe-max-size``); left as
it is where refused (a user past ``pipe-user-pages-soft``: 32 runs at once at this size)."""
READ_BYTES = 256 * 1024
"""At most this much is taken from a pipe at once."""
BLOCK_BYTES = 64 * 1024
"""At most this much (whole lines) is handed to the log at once: between two, it may ask to wait."""
LULL_SECONDS = 0.005
"""How long a pipe of :data:`PIPE_BYTES` is left to fill after a small read: what a line may wait before it is
read (a smaller pipe is left alone for less, in proportion)."""
DEFAULT_PIPE_BYTES = 65536


@dataclass(frozen=True, slots=True)
class PipeEnd:
    """Our end of one of the job's pipes, and what the pipe holds."""

    transport: asyncio.ReadTransport | None
    room: int = DEFAULT_PIPE_BYTES


def pipe_end(process: asyncio.SubprocessTransport, fd: int) -> PipeEnd:
    """Our end of the job's pipe ``fd`` (1 or 2), made to hold :data:`PIPE_BYTES` (right after the spawn: the
    pipe is closed once the job has closed it and all it wrote is read)."""
    transport = process.get_pipe_transport(fd)
    if not isinstance(transport, asyncio.ReadTransport):
        return PipeEnd(None)
    pipe = transport.get_extra_info("pipe")
    setting = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if pipe is None or setting is None:
        return PipeEnd(transport)
    try:
        return PipeEnd(transport, int(fcntl.fcntl(pipe.fileno(), setting, PIPE_BYTES)))
    except (OSError, ValueError):  # refused (or closed already): as it is
        with contextlib.suppress(OSError, ValueError):
            return PipeEnd(transport, int(fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ)))
    return PipeEnd(transport)


async def read_blocks(
    stream: asyncio.StreamReader,
    end: PipeEnd,
    pipe: Pipe,
    output: Output,
    seen: Callable[[bytes], None],
) -> None:
    """Hand a pipe's output to ``output`` a block of whole lines at a time as it is read (one line at a time if
    ``output`` takes only that), then to ``seen``; wait whenever ``output`` asks to."""
    transport = end.transport
    lull = LULL_SECONDS * min(1.0, end.room / PIPE_BYTES)
    small = min(end.room, READ_BYTES) // 2
    cutter = LineCutter()
    take = output.lines if isinstance(output, BlockOutput) else _one_by_one(output)
    while True:
        chunk = await stream.read(READ_BYTES)
        block = cutter.feed(chunk) if chunk else cutter.end()
        for part in _parts(block):
            if (lagging := take(pipe, part)) is not None:
                await lagging
            seen(part)
        if not chunk:
            return
        if transport is not None and len(chunk) < small:
            transport.pause_reading()
            try:
                await asyncio.sleep(lull)
            finally:
                transport.resume_reading()


def _parts(block: bytes) -> Iterator[bytes]:
    """``block`` in parts of whole lines of at most :data:`BLOCK_BYTES` (a clean line is shorter): the log may
    ask to wait between two, before it takes too much while its disk lags."""
    start = 0
    while len(block) - start > BLOCK_BYTES:
        stop = block.rfind(b"\n", start, start + BLOCK_BYTES) + 1
        yield block[start:stop]
        start = stop
    if start < len(block):
        yield block[start:]


def _one_by_one(output: Output) -> Callable[[Pipe, bytes], Awaitable[None] | None]:
    def take(pipe: Pipe, block: bytes) -> Awaitable[None] | None:
        lagging = [wait for line in lines_of(block) if (wait := output(pipe, line)) is not None]
        return _in_turn(lagging) if lagging else None

    return take


async def _in_turn(waits: list[Awaitable[None]]) -> None:
    """Every wait a line's output asked for, in order: none is left unawaited."""
    for wait in waits:
        await wait
