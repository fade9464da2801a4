"""How many streams may be open, and who may open one more: one :class:`Room` per kind of stream.

Event streams (the page's status bar) and log streams (a run's log, live) are counted apart, each against a
total of its own, so a crowd on one kind never shuts the other out. Within a kind:

- **Total.** Each open stream holds a file descriptor, and the job needs some too: beyond ``limit`` a new
  stream gets ``503`` (the service is full, for everyone).
- **Room kept for the token.** When the service has a token, streams opened without it (anonymous) may fill
  the total only up to ``limit - reserved`` (:func:`reserved_for_token`: a tenth). Requests that carry the
  token (or the read cookie) may use all of it, so the operator, ``trigger --wait`` and a page that has the
  token still get in while anonymous clients fill their share.
- **Per client.** One client address may hold at most ``per_client`` anonymous streams of a kind; beyond
  that it gets ``429``. One script can then hold no more than that, and everyone else still gets in. Streams
  that carry the token are not capped by address: whoever has it may already start and cancel runs, and an
  office behind one NAT address, or a reverse proxy nobody named as trusted, would otherwise share the cap.

Admission and release are synchronous: a stream takes its :class:`Seat` before the handler awaits anything
(writing the response head), so a thousand requests arriving together cannot all pass the check before the
first is counted. Refusals are logged once per spell: the total once until a stream is let in again, a
client's cap once until that client has no stream left (closing one and opening another stays one spell).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
TOKEN_SHARE = 0.1
"""Of each total, the share kept for requests that carry the token."""


class StreamKind(StrEnum):
    """What a stream carries; each kind is counted on its own."""

    EVENTS = "event"
    """``/api/snapshot/events``: the status document, for the page's bar."""
    LOG = "log"
    """``/api/snapshot/runs/{runId}/log/stream``: a run's log."""


@dataclass(frozen=True, slots=True)
class Seat:
    """An admitted stream's place in its room: give it back with :meth:`Room.release`."""

    kind: StreamKind
    key: str
    """The client address it is counted under."""
    anonymous: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a stream was not let in: ``503`` (full) or ``429`` (this client holds enough)."""

    status: int
    message: str
    retry_after: int = RETRY_AFTER_SECONDS


def reserved_for_token(limit: int) -> int:
    """Streams of ``limit`` that only requests with the token may take: a tenth, rounded up, but never all."""
    return max(0, min(limit - 1, math.ceil(limit * TOKEN_SHARE)))


class Room:
    """The open streams of one kind, counted by total and by client address."""

    def __init__(self, kind: StreamKind, *, limit: int, per_client: int, has_token: bool) -> None:
        self.kind = kind
        self.limit = limit
        self.per_client = per_client
        """0: no cap per client."""
        self.reserved = reserved_for_token(limit) if has_token else 0
        self.open = 0
        self._anonymous: Counter[str] = Counter()
        self._full: set[bool] = set()
        """Which ceilings (``True``: the anonymous one) are refusing now: each is logged once per spell."""
        self._capped: set[str] = set()

    @property
    def anonymous_limit(self) -> int:
        return self.limit - self.reserved

    def anonymous_from(self, key: str) -> int:
        return self._anonymous[key]

    def admit(self, key: str, *, anonymous: bool) -> Seat | Refusal:
        """A seat for a stream of client ``key``, or why not."""
        ceiling = self.anonymous_limit if anonymous else self.limit
        if self.open >= ceiling:
            return self._refuse_full(anonymous)
        if anonymous and self.per_client and self._anonymous[key] >= self.per_client:
            return self._refuse_client(key)
        self._full.discard(False)
        if anonymous:
            self._full.clear()
            self._anonymous[key] += 1
        self.open += 1
        return Seat(self.kind, key, anonymous)

    def release(self, seat: Seat) -> None:
        self.open -= 1
        if not seat.anonymous:
            return
        self._anonymous[seat.key] -= 1
        if self._anonymous[seat.key] <= 0:
            del self._anonymous[seat.key]  # the counter holds only clients with a stream open
            self._capped.discard(seat.key)

    def _refuse_full(self, anonymous: bool) -> Refusal:
        kept = anonymous and self.reserved > 0
        if anonymous not in self._full:
            self._full.add(anonymous)
            if kept:
                log.warning(
                    "%d %s streams open, the most allowed without the token (%d more are kept for requests "
                    "with it): refusing others with 503 until some close",
                    self.open,
                    self.kind,
                    self.reserved,
                )
            else:
                log.warning(
                    "%d %s streams open, the most allowed: refusing more with 503 until some close",
                    self.open,
                    self.kind,
                )
        if kept:
            message = (
                f"Too many open {self.kind} streams ({self.anonymous_limit} without the token, the rest are kept "
                f"for requests with it); try again in {RETRY_AFTER_SECONDS} s"
            )
        else:
            message = f"Too many open {self.kind} streams ({self.limit}); try again in {RETRY_AFTER_SECONDS} s"
        return Refusal(503, message)

    def _refuse_client(self, key: str) -> Refusal:
        if key not in self._capped:
            self._capped.add(key)
            log.warning(
                "client %s holds %d %s streams, the most one address may: refusing more from it with 429 until "
                "it closes them",
                key,
                self.per_client,
                self.kind,
            )
        return Refusal(
            429,
            f"Too many open {self.kind} streams from your address ({self.per_client}); close one, or try again "
            f"in {RETRY_AFTER_SECONDS} s",
        )
