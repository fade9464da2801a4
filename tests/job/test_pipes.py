"""Reading a job's pipe: blocks of whole lines to a log that takes them (or one line at a time to one that does
not), parts small enough for the log to hold the reader back between two, a big pipe, and a line printed alone
seen while the job still runs."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from collections.abc import Awaitable
from pathlib import Path

import pytest

from orchestrator.core.events import RunStatus, Source
from orchestrator.job.pipes import BLOCK_BYTES, PIPE_BYTES, PipeEnd, pipe_end, read_blocks
from orchestrator.job.protocol import Pipe, RunContext
from orchestrator.job.subprocessjob import SubprocessJob


class Blocks:
    """A log that takes blocks, and holds the reader back after the first until told."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.held = asyncio.get_running_loop().create_future()

    def __call__(self, pipe: Pipe, text: str) -> Awaitable[None] | None:
        raise AssertionError("a log that takes blocks gets blocks")

    def lines(self, pipe: Pipe, block: bytes) -> Awaitable[None] | None:
        self.blocks.append(block)
        return self.held if len(self.blocks) == 1 else None


def fed(data: bytes) -> asyncio.StreamReader:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    return stream


async def test_blocks_of_whole_lines_with_the_reader_held_back_between_two() -> None:
    data = b"".join(b"line %06d of the job\n" % i for i in range(20_000))
    log, seen = Blocks(), []
    reading = asyncio.ensure_future(read_blocks(fed(data), Pipe.OUT, log, seen.append))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(log.blocks) == 1 and seen == [], "held back: nothing more taken, not even looked at"
    log.held.set_result(None)
    await reading
    assert b"".join(log.blocks) == data and seen == log.blocks
    assert all(block.endswith(b"\n") and len(block) <= BLOCK_BYTES for block in log.blocks)


async def test_a_log_that_takes_one_line_at_a_time_gets_every_line() -> None:
    lines: list[tuple[Pipe, str]] = []
    output = lambda pipe, text: lines.append((pipe, text))  # noqa: E731
    await read_blocks(fed(b"a\n\nb\r\nc"), Pipe.ERR, output, lambda block: None)
    assert lines == [(Pipe.ERR, "a"), (Pipe.ERR, ""), (Pipe.ERR, "b"), (Pipe.ERR, "c")]


class Exits(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        self.exited.set()


@pytest.mark.process
async def test_the_job_s_pipes_are_made_big() -> None:
    loop = asyncio.get_running_loop()
    transport, exits = await loop.subprocess_exec(
        Exits, sys.executable, "-c", "import sys; sys.stdin.read()", stderr=asyncio.subprocess.DEVNULL
    )
    try:
        end = pipe_end(transport, 1)
        assert end.transport is not None
        pipe = end.transport.get_extra_info("pipe")
        assert end.room == PIPE_BYTES == fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ)
        assert pipe_end(transport, 2) == PipeEnd(None), "no such pipe"
    finally:
        stdin = transport.get_pipe_transport(0)
        assert stdin is not None
        stdin.close()  # the job ends
        async with asyncio.timeout(10):
            await exits.exited.wait()
        transport.close()


@pytest.mark.process
async def test_a_line_printed_alone_is_logged_while_the_job_runs(tmp_path: Path) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    script = f"print('first', flush=True); open({str(fifo)!r}).read(); print('last')"
    first = asyncio.Event()
    lines: list[str] = []

    def output(pipe: Pipe, text: str) -> None:
        lines.append(text)
        first.set()

    def release() -> None:
        """Let the job go on: opening the FIFO to write waits until the job has it open to read (a write made
        before that, into a FIFO nobody reads, would be thrown away with it and the job would wait for ever)."""
        go = os.open(fifo, os.O_WRONLY)
        try:
            os.write(go, b"go")
        finally:
            os.close(go)

    ctx = RunContext("20260120T100000Z-00000p", Source.HTTP, "", tmp_path / "progress.json", output)
    job = asyncio.ensure_future(SubprocessJob([sys.executable, "-c", script]).run(ctx, lambda parsed: None))
    async with asyncio.timeout(10):
        await first.wait()
    assert lines == ["first"]
    try:
        async with asyncio.timeout(10):
            await asyncio.to_thread(release)
    except TimeoutError:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # frees the thread stuck in its open
        raise
    assert (await job).status is RunStatus.COMPLETED
    assert lines == ["first", "last"]
