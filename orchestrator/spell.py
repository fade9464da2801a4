"""One log line per spell of a recurring problem, not one per occurrence. Pure: the caller passes ``now``."""

from __future__ import annotations

from datetime import datetime, timedelta

SPELL = timedelta(minutes=1)


class Spell:
    """A problem said at its first occurrence, then at most once per ``length``, with how many occurrences
    were held back since the last line: a page that keeps trying costs the log one line a minute."""

    def __init__(self, length: timedelta = SPELL) -> None:
        self.length = length
        self._ends: datetime | None = None
        self._held = 0

    def hit(self, now: datetime) -> int | None:
        """Count one occurrence. ``None``: say nothing now. Else a line is due, and this is how many were held
        back since the last one (0 the first time)."""
        if self._ends is not None and now < self._ends:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._ends = now + self.length
        return held
