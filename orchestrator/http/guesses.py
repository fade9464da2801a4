"""Refused credentials, counted by client address: the token-guess limit of the guard.

A client that sends more than :data:`GUESSES_PER_MINUTE` wrong bearer tokens in a minute gets 429 until the
minute has passed, and one log line a minute says who keeps guessing (with the count of the spell before).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from datetime import datetime, timedelta

from aiohttp import web

from orchestrator.core.spell import Spell
from orchestrator.http.errors import json_error
from orchestrator.http.ratelimit import SlidingWindowLimit

log = logging.getLogger(__name__)

GUESSES_PER_MINUTE = 20
"""Refused bearer tokens one client address may send in a minute before it gets 429 until the minute has
passed; a missing token is no guess (a page asks for it), nor is a read cookie that is not valid."""
GUESS_CLIENTS = 10_000
"""Client addresses whose recent guesses are remembered; beyond that the oldest are forgotten."""
GUESS_SPELL = timedelta(minutes=1)


def too_many_guesses(wait: int) -> web.Response:
    return json_error(429, f"Too many refused credentials; try again in {wait} s", {"Retry-After": str(wait)})


class Guesses:
    """Refused credentials, by client address: one log line per spell (with the count of the last one), and a
    429 for a client that keeps guessing. Pure but for the log: the caller passes ``now``."""

    def __init__(self) -> None:
        self._by_client: OrderedDict[str, SlidingWindowLimit] = OrderedDict()
        self._blocked: dict[str, datetime] = {}
        self._spell = Spell(GUESS_SPELL)

    def blocked(self, client: str, now: datetime) -> int | None:
        """Whole seconds ``client`` must still wait, or ``None``."""
        until = self._blocked.get(client)
        if until is None:
            return None
        if now >= until:
            del self._blocked[client]
            return None
        return max(1, math.ceil((until - now).total_seconds()))

    def refused(self, client: str, now: datetime) -> web.Response | None:
        """Count a refused credential of ``client``; the 429 to send instead of the 401 once it is too many."""
        self._say(client, now)
        limit = self._by_client.pop(client, None) or SlidingWindowLimit(GUESSES_PER_MINUTE)
        self._by_client[client] = limit  # the newest last: the oldest are forgotten first
        while len(self._by_client) > GUESS_CLIENTS:
            self._by_client.popitem(last=False)
        admission = limit.admit(now)
        if admission.allowed:
            return None
        self._blocked[client] = now + timedelta(seconds=admission.retry_after)
        if len(self._blocked) > GUESS_CLIENTS:
            self._blocked = {c: t for c, t in self._blocked.items() if t > now}
        return too_many_guesses(admission.retry_after)

    def _say(self, client: str, now: datetime) -> None:
        held = self._spell.hit(client, now)
        if held is None:
            return
        log.warning(
            "refused a wrong token from %s (more in the next minute are counted, not logged; %d a minute from one "
            "address get 429)%s",
            client,
            GUESSES_PER_MINUTE,
            held.text(),
        )
