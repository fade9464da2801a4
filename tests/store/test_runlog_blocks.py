"""A run's log taking a block of lines at once keeps the same log as one line at a time: the same lines with
their stamp and pipe, cut at the same line with the same marker, the same lines dropped while the disk refuses
writes; and its live readers are woken once for the block. A read of the log takes each byte from where it is:
the file, the batch on its way there, or memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.job.protocol import Pipe
from orchestrator.store.livelog import RunLog
from orchestrator.store.runlogs import RunLogs

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
RUN_ID = "20260120T100000Z-00000c"
LINES = [f"line {i} " + "x" * (i % 50) for i in range(3000)]


async def logged(folder: Path, blocks: bool, *, refuse: bool = False, **bounds: int) -> str:
    folder.mkdir()
    if refuse:
        (folder / "logs").write_text("in the way")
    logs = RunLogs(folder, FakeClock(T0), **bounds)
    output = logs.open(RUN_ID)
    output(Pipe.ERR, "first")
    if refuse:
        await logs.flush()  # fails: from here on the writer knows the disk refuses writes
    for start in range(0, len(LINES), 500):
        some = LINES[start : start + 500]
        if blocks:
            output.lines(Pipe.OUT, "".join(f"{line}\n" for line in some).encode())
        else:
            for line in some:
                output(Pipe.OUT, line)
    if refuse:
        (folder / "logs").unlink()
    logs.close(RunRecord(RUN_ID, (Trigger(Source.HTTP, T0),), T0, status=RunStatus.COMPLETED, finished_at=T0))
    await logs.stop()
    return (folder / "logs" / f"{RUN_ID}.log").read_text()


@pytest.mark.parametrize(
    ("bounds", "refuse"),
    [
        ({}, False),
        ({"max_bytes": 40_000}, False),  # cut in the middle of a block
        ({"max_pending": 20_000}, True),  # lines dropped while the disk refuses, one marker once it takes them
    ],
)
async def test_a_block_is_logged_as_its_lines_one_at_a_time_would_be(
    tmp_path: Path, bounds: dict[str, int], refuse: bool
) -> None:
    by_block = await logged(tmp_path / "blocks", True, refuse=refuse, **bounds)
    by_line = await logged(tmp_path / "lines", False, refuse=refuse, **bounds)
    assert by_block == by_line
    assert by_block.startswith("10:00:00.000 err first\n10:00:00.000 out line 0 \n10:00:00.000 out line 1 x\n")
    if bounds:
        assert "[snapshot-orchestrator]" in by_block.splitlines()[-1]


async def test_live_readers_are_woken_once_for_a_block(tmp_path: Path) -> None:
    logs = RunLogs(tmp_path, FakeClock(T0))
    output = logs.open(RUN_ID)
    live = logs.get(RUN_ID)
    assert live is not None
    wakes = 0
    real_tell = live.tell

    def tell() -> None:
        nonlocal wakes
        wakes += 1
        real_tell()

    live.tell = tell  # type: ignore[method-assign]
    output.lines(Pipe.OUT, b"a\nb\nc\n")
    assert wakes == 1
    memory, from_file = live.read(0, 1000)
    assert from_file is None
    assert memory == b"10:00:00.000 out a\n10:00:00.000 out b\n10:00:00.000 out c\n"
    await logs.stop()


@pytest.mark.parametrize(
    ("offset", "limit", "memory", "from_file"),
    [
        (0, 40, b"", (0, 40)),  # all on disk: nothing of the batch in flight
        (20, 40, b"", (20, 60)),
        (60, 40, b"", (60, 100)),
        (90, 20, b"f" * 10, (90, 100)),
        (100, 100, b"f" * 50 + b"p" * 10, None),
        (140, 100, b"f" * 10 + b"p" * 10, None),
        (155, 3, b"p" * 3, None),
    ],
)
def test_a_read_takes_each_byte_from_where_it_is(
    offset: int, limit: int, memory: bytes, from_file: tuple[int, int] | None
) -> None:
    live = RunLog(RUN_ID, Path("unused.log"))
    live.flushed, live.in_flight, live.pending = 100, b"f" * 50, bytearray(b"p" * 10)
    assert live.read(offset, limit) == (memory, from_file)
