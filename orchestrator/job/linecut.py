"""A job's pipe as whole lines for its log: the bytes as they are read, cut at newlines a block at a time (bytes
operations over the whole block, not a Python step per line), each line made clean on the way: valid UTF-8 (bad
bytes replaced), no carriage return at its end, at most :data:`MAX_LINE_BYTES` bytes (a longer one is cut there
and marked; the rest of it, up to the next newline, is dropped: gigabytes without a newline are one log line).

A block is what the log takes at once: whole lines, each ending in a newline. A block of plain short lines (the
usual output) is passed on as the very bytes read."""

from __future__ import annotations

from collections.abc import Iterator

MAX_LINE_BYTES = 8192
CUT_MARK = f" [line cut at {MAX_LINE_BYTES} bytes]"


class LineCutter:
    """Cuts one pipe's bytes, fed as they come, into blocks of whole clean lines."""

    def __init__(self) -> None:
        self._rest = b""
        """The start of a line whose newline has not come yet."""
        self._dropping = False
        """A line was cut: what comes up to its newline is not kept."""

    def feed(self, chunk: bytes) -> bytes:
        """The whole lines ``chunk`` completes, clean, each ending in a newline (``b""`` if none)."""
        if self._dropping:
            newline = chunk.find(b"\n")
            if newline < 0:
                return b""
            chunk, self._dropping = chunk[newline + 1 :], False
        end = chunk.rfind(b"\n") + 1
        if end:
            block = clean_block(self._rest + chunk[:end] if self._rest else chunk[:end])
            self._rest = chunk[end:]
        else:
            block, self._rest = b"", self._rest + chunk
        if len(self._rest) > MAX_LINE_BYTES:
            block += clean_line(self._rest) + b"\n"
            self._rest, self._dropping = b"", True
        return block

    def end(self) -> bytes:
        """The last line, if the pipe closed before its newline (as a block: with one)."""
        rest, self._rest = self._rest, b""
        return clean_line(rest) + b"\n" if rest else b""


def clean_block(block: bytes) -> bytes:
    """``block`` (whole lines) with every line clean: the same bytes when they are already."""
    if b"\r" not in block and _short(block) and _utf8(block):
        return block
    return b"\n".join([clean_line(raw) for raw in block.split(b"\n")[:-1]]) + b"\n"


def clean_line(raw: bytes) -> bytes:
    """One line (without its newline) made clean."""
    text = raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r")
    return (text + CUT_MARK if len(raw) > MAX_LINE_BYTES else text).encode()


def lines_of(block: bytes) -> Iterator[str]:
    """Each line of a clean block, as text."""
    text = block.decode()
    start = 0
    while (end := text.find("\n", start)) >= 0:
        yield text[start:end]
        start = end + 1


def lines_with(block: bytes, mark: bytes) -> Iterator[str]:
    """The lines of a clean block that hold ``mark``, as text; found without looking at the others."""
    at = block.find(mark)
    while at >= 0:
        start = block.rfind(b"\n", 0, at) + 1
        end = block.find(b"\n", at)
        yield block[start:end].decode()
        at = block.find(mark, end)


def last_lines(block: bytes, count: int) -> list[str]:
    """The last ``count`` lines of a clean block that are not blank, as text, in order; found from its end."""
    found: list[str] = []
    end = len(block) - 1  # the newline of the last line
    while end >= 0 and len(found) < count:
        start = block.rfind(b"\n", 0, end) + 1
        if (line := block[start:end].decode()).strip():
            found.append(line)
        end = start - 1
    return found[::-1]


def _short(block: bytes) -> bool:
    return len(block) <= MAX_LINE_BYTES + 1 or max(map(len, block.split(b"\n"))) <= MAX_LINE_BYTES


def _utf8(block: bytes) -> bool:
    if block.isascii():
        return True
    try:
        block.decode()
    except UnicodeDecodeError:
        return False
    return True
