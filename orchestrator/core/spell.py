"""One log line per spell of a recurring problem, not one per occurrence. Pure: the caller passes ``now``.

The first occurrence is said at once; the rest of the spell (a minute) is counted, by who caused it, and said
with the first line of the next spell. A page or a script that keeps trying costs the log a line a minute.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

SPELL = timedelta(minutes=1)
SPELL_NAMES = 1000
"""Whos counted by name in one spell; beyond that only the total (a flood from many addresses stays cheap)."""


@dataclass(frozen=True, slots=True)
class Held:
    """What a spell counted without saying it: how many, and from whom the most."""

    count: int
    top: tuple[tuple[str, int], ...] = ()

    def text(self) -> str:
        """`` (and 12 more refused since the last such line, most from a (9), b (3))``, or nothing."""
        if not self.count:
            return ""
        most = ", ".join(f"{who} ({n})" for who, n in self.top)
        return f" (and {self.count} more refused since the last such line" + (f", most from {most})" if most else ")")


class Spell:
    """:meth:`hit` answers ``None`` while a spell lasts (the occurrence is counted), else what the spell
    before held: the caller logs one line with it, and a new spell begins."""

    def __init__(self, length: timedelta = SPELL) -> None:
        self.length = length
        self._ends: datetime | None = None
        self._count = 0
        self._by_who: Counter[str] = Counter()

    def hit(self, who: str, now: datetime) -> Held | None:
        if self._ends is not None and now < self._ends:
            self._count += 1
            if who in self._by_who or len(self._by_who) < SPELL_NAMES:
                self._by_who[who] += 1
            return None
        held = Held(self._count, tuple(self._by_who.most_common(3)))
        self._ends, self._count, self._by_who = now + self.length, 0, Counter()
        return held
