"""Text from the service made safe to print: a job's step and error, a trigger's reason, a check's message.

Jobs and reasons are written by outsiders (a pull request's data, a script's stderr). Printed as they are, an
escape sequence in them sets the operator's window title, clears the screen or rewrites a line ("FAKE: all
good"). Every C0 and C1 control character (ESC, BEL, CR, backspace, tab, newline, ...) and DEL is shown as
``\\xNN`` instead, so nothing in the text talks to the terminal or moves its cursor, and the reader sees what
was sent. The CLI prints service text only through :func:`printable` / :func:`first_line`; mail bodies too.
"""

from __future__ import annotations

import re

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as ``\\xNN`` (``"\\x1b[2J"`` -> ``"\\\\x1b[2J"``).
    ``keep_newlines``: line breaks (``\\n``, ``\\r\\n``) stay, as ``\\n``, for a multi-line text (a mail body)."""
    if keep_newlines:
        return "\n".join(printable(line) for line in text.replace("\r\n", "\n").split("\n"))
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def first_line(text: str) -> str:
    """The first line of ``text`` (split at ``\\n`` only: a bare CR is shown, not taken as a line end, so a
    line that overwrites itself reads as it was sent), printable."""
    return printable(text.strip().replace("\r\n", "\n").split("\n", 1)[0])
