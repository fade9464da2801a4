"""A sliding-window rate limit, pure: the caller passes ``now`` (from the service's clock), so it is tested as
a table of (time, expected answer) without sleeping."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer for one request: allowed, or refused with the whole seconds to wait (at least 1)."""

    allowed: bool
    retry_after: int = 0


ALLOWED = Admission(allowed=True)


class SlidingWindowLimit:
    """At most ``limit`` admissions in any ``window``; ``limit == 0`` admits everything.

    It keeps the times of the admissions still inside the window (at most ``limit`` of them), so memory is
    bounded whatever the traffic. Refused requests are not recorded: a client that keeps hammering is let
    in again as soon as the oldest admission leaves the window, not punished for its refusals.
    """

    def __init__(self, limit: int, window: timedelta = timedelta(minutes=1)) -> None:
        if limit < 0:
            raise ValueError(f"limit must be zero or more, got {limit}")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        self.limit = limit
        self.window = window
        self._admitted: deque[datetime] = deque()

    def admit(self, now: datetime) -> Admission:
        if self.limit == 0:
            return ALLOWED
        if self._admitted and self._admitted[-1] > now:
            # The wall clock was set back: the recorded times mean nothing now, and keeping them could refuse
            # everyone for as long as the step. Forgetting them admits at most one extra window's worth.
            self._admitted.clear()
        while self._admitted and self._admitted[0] + self.window <= now:
            self._admitted.popleft()
        if len(self._admitted) < self.limit:
            self._admitted.append(now)
            return ALLOWED
        wait = (self._admitted[0] + self.window - now).total_seconds()
        return Admission(allowed=False, retry_after=max(1, math.ceil(wait)))
