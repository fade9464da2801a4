"""A pipe's bytes as whole clean lines, a block at a time: plain output passes as the very bytes read; a carriage
return, bad UTF-8 and an over-long line are made clean as one line at a time always made them."""

from __future__ import annotations

import pytest

from orchestrator.job.linecut import (
    CUT_MARK,
    MAX_LINE_BYTES,
    LineCutter,
    clean_block,
    last_lines,
    lines_of,
    lines_with,
)

LONG = b"x" * (MAX_LINE_BYTES + 10)
CUT = b"x" * MAX_LINE_BYTES + CUT_MARK.encode()


def cut(*chunks: bytes) -> bytes:
    cutter = LineCutter()
    return b"".join(cutter.feed(chunk) for chunk in chunks) + cutter.end()


@pytest.mark.parametrize(
    ("chunks", "block"),
    [
        ((b"a\nb\n",), b"a\nb\n"),
        ((b"a\nb",), b"a\nb\n"),  # the last line without its newline, at the end
        ((b"a", b"b\nc", b"\n"), b"ab\nc\n"),
        ((b"\n\n",), b"\n\n"),  # blank lines are lines
        ((b"dos\r\n", b"two\r\r\n"), b"dos\ntwo\n"),
        ((b"bad \xff byte\n",), "bad \ufffd byte\n".encode()),
        (("ünïcode\n".encode(),), "ünïcode\n".encode()),
        # A character split between two reads is whole again.
        (("é\n".encode()[:1], "é\n".encode()[1:]), "é\n".encode()),
        ((LONG + b"\nnext\n",), CUT + b"\nnext\n"),
        # Over several reads: cut once, the rest up to its newline dropped.
        ((LONG[:5000], LONG[5000:], b"tail of it\nnext\n"), CUT + b"\nnext\n"),
        ((LONG,), CUT + b"\n"),
        ((b"",), b""),
    ],
)
def test_a_pipe_s_bytes_come_out_as_whole_clean_lines(chunks: tuple[bytes, ...], block: bytes) -> None:
    assert cut(*chunks) == block


def test_plain_lines_are_passed_on_as_the_bytes_read() -> None:
    block = b"".join(b"line %d of the job\n" % i for i in range(5000))
    assert clean_block(block) is block
    assert LineCutter().feed(block) is block


def test_the_lines_of_a_block_and_those_that_hold_a_word() -> None:
    block = b"a\nPROGRESS 5 one\nb\n  PROGRESS 7\n\nPROGRESS 9 end\n"
    assert list(lines_of(block)) == ["a", "PROGRESS 5 one", "b", "  PROGRESS 7", "", "PROGRESS 9 end"]
    assert list(lines_with(block, b"PROGRESS")) == ["PROGRESS 5 one", "  PROGRESS 7", "PROGRESS 9 end"]
    assert list(lines_with(b"a\nb\n", b"PROGRESS")) == []


@pytest.mark.parametrize(
    ("block", "count", "last"),
    [
        (b"a\nb\n\n  \nc\n", 2, ["b", "c"]),
        (b"a\nb\n\n  \nc\n", 10, ["a", "b", "c"]),
        (b"\n\n", 3, []),
        (b"", 3, []),
        (b" x \n", 1, [" x "]),
    ],
)
def test_the_last_lines_that_say_something(block: bytes, count: int, last: list[str]) -> None:
    assert last_lines(block, count) == last
