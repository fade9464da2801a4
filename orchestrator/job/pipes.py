"""Reading a job's pipe: a block of whole lines at a time (:mod:`orchestrator.job.linecut`).

The pipe is made big (:data:`PIPE_BYTES`) so that a job printing faster than the service reads is not held up
by a full pipe, and each read takes all that waits (up to :data:`READ_BYTES`), cut into whole lines with bytes
operations. Each pipe is read as soon as it has something: what the job printed on its two pipes is logged in
the order it was read, as near the order it was printed as two pipes allow (waiting on one pipe to let it
fill would log the other's later lines before its earlier ones).
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
    pipe: Pipe,
    output: Output,
    seen: Callable[[bytes], None],
) -> None:
    """Hand a pipe's output to ``output`` a block of whole lines at a time as it is read (one line at a time if
    ``output`` takes only that), then to ``seen``; wait whenever ``output`` asks to."""
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
