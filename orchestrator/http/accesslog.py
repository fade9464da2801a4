"""aiohttp's server log, tamed: a malformed request (a bad header, garbage instead of HTTP) is the client's
fault, answered with a 400 by aiohttp itself, yet logged at ERROR with a traceback each time (about 600 KiB/s
from one client sending them in a loop). One line per spell says it; the rest of the spell is counted.

And its access log, which prints each request line with its query, never shows a stream ticket
(``?ticket=``: orchestrator/http/tickets.py): the service keeps that log off, and should anyone turn it on, every
query in its lines is replaced with ``?<redacted>`` (the parameter's name may come percent-encoded, so the
whole query goes, not only ``ticket=``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

SPELL_SECONDS = 60.0
QUERY = re.compile(r"\?[^\s\"']*")


class MalformedRequests(logging.Filter):
    """On the ``aiohttp.server`` logger: the first malformed request of a spell becomes one warning line (no
    traceback); the others within :data:`SPELL_SECONDS` are counted and said in the next spell's line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._spell_ends: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = self._clock()
        if self._spell_ends is not None and now < self._spell_ends:
            self._held += 1
            return False
        held, self._held = self._held, 0
        self._spell_ends = now + SPELL_SECONDS
        what = (exc.message or type(exc).__name__).strip().splitlines()[0]
        said = record.getMessage()  # "Error handling request from <address>"
        record.msg = "malformed HTTP request (answered 400): %s: %s%s; more in the next %g s are counted, not logged"
        record.args = (
            said,
            what,
            f" ({held} more in the last spell)" if held else "",
            SPELL_SECONDS,
        )
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class RedactQueries(logging.Filter):
    """On the ``aiohttp.access`` logger: every query in a line becomes ``?<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = QUERY.sub("?<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install() -> None:
    logging.getLogger("aiohttp.server").addFilter(MalformedRequests())
    logging.getLogger("aiohttp.access").addFilter(RedactQueries())
