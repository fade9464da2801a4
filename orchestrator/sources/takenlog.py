"""The log lines about taken trigger files: one at once, then one summary a second during a burst."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from orchestrator.sources.trigger_files import TakenFile

log = logging.getLogger("orchestrator.sources.folder")
"""The folder's logger: these lines are the folder source's own."""


LOG_WINDOW = timedelta(seconds=1)
"""After a line about taken trigger files, further takes are summed up for this long."""


class TakenLog:
    """Logs taken trigger files: the first look that takes some gets a line at once; whatever is taken during
    the next :data:`LOG_WINDOW` is summed up in one line when it ends. A burst of thousands of files, for which
    the folder may be looked at hundreds of times, is a line or two a second, not one line per file."""

    def __init__(self) -> None:
        self._window_ends: datetime | None = None
        self._held = 0
        self._first_held = ""

    @property
    def deadline(self) -> datetime | None:
        """When a summary is due (``None``: nothing to sum up)."""
        return self._window_ends if self._held else None

    def flush_if_due(self, now: datetime) -> None:
        if self._held and self._window_ends is not None and now >= self._window_ends:
            log.info("%d more trigger files taken (the first: %r)", self._held, self._first_held)
            self._held, self._window_ends = 0, None

    def add(self, taken: list[TakenFile], now: datetime) -> None:
        if not taken:
            return
        if self._window_ends is not None and now < self._window_ends:
            if not self._held:
                self._first_held = taken[0].name
            self._held += len(taken)
            return
        # Names with %r: a name may hold a newline, which would forge a log line. (Reasons are clean.)
        if len(taken) == 1:
            log.info("trigger file %r taken (reason: %s)", taken[0].name, taken[0].reason)
        else:
            log.info("%d trigger files taken (the first: %r)", len(taken), taken[0].name)
        self._window_ends = now + LOG_WINDOW
