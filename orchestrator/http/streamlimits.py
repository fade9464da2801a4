"""How many streams may be open, and who may open one more: one :class:`Room` per kind of stream.

Event streams (the page's status bar) and log streams (a run's log, live) are counted apart, each against a
total of its own, so a crowd on one kind never shuts the other out. Within a kind, what a stream may take
depends on the :class:`Credential` its request carried:

- **Total.** Each open stream holds a file descriptor, and the job needs some too: beyond ``limit`` a new
  stream gets ``503`` (the service is full, for everyone).
- **Room kept for the token.** When the service has a token, a tenth of the total (:func:`reserved_for_token`)
  is kept from anonymous streams. Of that tenth, the larger half (:func:`kept_for_bearer`) is kept from
  read-cookie streams too: the cookie reaches every server on the host (cookies ignore ports), so a
  neighbour that caught one could otherwise take the whole reserve, and the operator, ``trigger --wait`` and
  ``curl`` with the bearer token must always get in.
- **Per client.** One client address may hold at most ``per_client`` anonymous streams of a kind, and apart
  from them as many read-cookie streams; beyond that it gets ``429``. Counted apart, so the operator's page
  (one stream, with the cookie) still gets in behind a NAT address whose anonymous viewers hold its cap. Only
  bearer streams are not capped by address: whoever has the token may already start and cancel runs, and an
  office behind one NAT address, or a reverse proxy nobody named as trusted, would otherwise share the cap.
- **Per network.** An IPv6 client is counted by its /64, but one subscriber gets a /56 (a home) or more: the
  /64s of one /56 together may hold at most :data:`NETWORK_FACTOR` times ``per_client`` of each credential.

Admission and release are synchronous: a stream takes its :class:`Seat` before the handler awaits anything
(writing the response head), so a thousand requests arriving together cannot all pass the check before the
first is counted. Refusals are logged by time (:class:`Spell`): the first of a spell is one line, the rest of
the minute are counted and the count is said with the next spell's line, so clients that keep closing one
stream and opening two never write more than a line a minute of each kind.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orchestrator.core.spell import Spell

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
TOKEN_SHARE = 0.1
"""Of each total, the share kept from anonymous streams for requests that carry the token."""
NETWORK_FACTOR = 4
"""Streams the client addresses of one network (an IPv6 /56) may hold together, in ``per_client``s."""


class StreamKind(StrEnum):
    """What a stream carries; each kind is counted on its own."""

    EVENTS = "event"
    """``/api/snapshot/events``, ``/api/jobs/{job}/events``: a job's status document, for the page's bar; and
    ``/api/events``, every job's in one stream."""
    LOG = "log"
    """``.../runs/{runId}/log/stream``: a run's log."""


class Credential(StrEnum):
    """What a stream's request proved, from least to most; it decides the stream's ceiling and caps."""

    NONE = "none"
    """Anonymous (or a wrong token): the anonymous share, capped per address."""
    COOKIE = "cookie"
    """The read cookie, or a stream ticket, only (a page's ``EventSource``): part of the reserve too, capped
    per address apart from anonymous streams."""
    BEARER = "bearer"
    """``Authorization: Bearer`` with the token: the whole total, no cap per address."""


@dataclass(frozen=True, slots=True)
class Seat:
    """An admitted stream's place in its room: give it back with :meth:`Room.release`."""

    kind: StreamKind
    key: str
    """The client address it is counted under."""
    credential: Credential
    network: str | None = None
    """The wider network it is counted under too (an IPv6 /56), if any."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a stream was not let in: ``503`` (full) or ``429`` (this client holds enough)."""

    status: int
    message: str
    retry_after: int = RETRY_AFTER_SECONDS


def reserved_for_token(limit: int) -> int:
    """Streams of ``limit`` that anonymous requests may not take: a tenth, rounded up, but never all."""
    return max(0, min(limit - 1, math.ceil(limit * TOKEN_SHARE)))


def kept_for_bearer(reserved: int) -> int:
    """Of the ``reserved`` streams, those only the bearer token may take: the larger half (all of one)."""
    return (reserved + 1) // 2


class Room:
    """The open streams of one kind, counted by total, by credential and by client address."""

    def __init__(self, kind: StreamKind, *, limit: int, per_client: int, has_token: bool) -> None:
        self.kind = kind
        self.limit = limit
        self.per_client = per_client
        """0: no cap per client."""
        self.reserved = reserved_for_token(limit) if has_token else 0
        self.open = 0
        self._held: Counter[tuple[Credential, str]] = Counter()
        """Open streams by credential and client (or network), for the capped credentials only."""
        self._full = Spell()
        self._capped = Spell()

    @property
    def anonymous_limit(self) -> int:
        return self.limit - self.reserved

    @property
    def per_network(self) -> int:
        return self.per_client * NETWORK_FACTOR

    def ceiling(self, credential: Credential) -> int:
        """How many streams may be open when one with ``credential`` asks to join them."""
        if credential is Credential.NONE:
            return self.limit - self.reserved
        if credential is Credential.COOKIE:
            return self.limit - kept_for_bearer(self.reserved)
        return self.limit

    def held_by(self, key: str, credential: Credential = Credential.NONE) -> int:
        """Streams client (or network) ``key`` holds with ``credential``; bearer streams are not counted."""
        return self._held[credential, key]

    def admit(self, key: str, credential: Credential, now: datetime, *, network: str | None = None) -> Seat | Refusal:
        """A seat for a stream of client ``key`` (in ``network``, if any), or why not."""
        if self.open >= self.ceiling(credential):
            return self._refuse_full(key, credential, now)
        if credential is not Credential.BEARER and self.per_client:
            if self._held[credential, key] >= self.per_client:
                return self._refuse_capped(key, self.per_client, "address", credential, now)
            if network is not None and self._held[credential, network] >= self.per_network:
                return self._refuse_capped(network, self.per_network, "network", credential, now)
        if credential is not Credential.BEARER:
            self._held[credential, key] += 1
            if network is not None:
                self._held[credential, network] += 1
        self.open += 1
        return Seat(self.kind, key, credential, network)

    def release(self, seat: Seat) -> None:
        self.open -= 1
        if seat.credential is Credential.BEARER:
            return
        for key in (seat.key, seat.network):
            if key is None:
                continue
            self._held[seat.credential, key] -= 1
            if self._held[seat.credential, key] <= 0:
                del self._held[seat.credential, key]  # the counter holds only clients with a stream open

    def _refuse_full(self, key: str, credential: Credential, now: datetime) -> Refusal:
        ceiling = self.ceiling(credential)
        kept = self.limit - ceiling
        held = self._full.hit(key, now)
        if held is not None:
            if credential is Credential.NONE and kept:
                log.warning(
                    "%d %s streams open, the most allowed without the token (%d more are kept for requests "
                    "with it): refusing others with 503 until some close%s",
                    self.open,
                    self.kind,
                    kept,
                    held.text(),
                )
            elif credential is Credential.COOKIE and kept:
                log.warning(
                    "%d %s streams open, the most allowed with the read cookie (%d more are kept for the bearer "
                    "token): refusing others with 503 until some close%s",
                    self.open,
                    self.kind,
                    kept,
                    held.text(),
                )
            else:
                log.warning(
                    "%d %s streams open, the most allowed: refusing more with 503 until some close%s",
                    self.open,
                    self.kind,
                    held.text(),
                )
        if credential is Credential.NONE and kept:
            message = (
                f"Too many open {self.kind} streams ({ceiling} without the token, the rest are kept for requests "
                f"with it); try again in {RETRY_AFTER_SECONDS} s"
            )
        elif credential is Credential.COOKIE and kept:
            message = (
                f"Too many open {self.kind} streams ({ceiling} with the read cookie, the rest are kept for "
                f"requests with the bearer token); try again in {RETRY_AFTER_SECONDS} s"
            )
        else:
            message = f"Too many open {self.kind} streams ({self.limit}); try again in {RETRY_AFTER_SECONDS} s"
        return Refusal(503, message)

    def _refuse_capped(self, who: str, cap: int, what: str, credential: Credential, now: datetime) -> Refusal:
        held = self._capped.hit(who, now)
        with_cookie = " with the read cookie" if credential is Credential.COOKIE else ""
        if held is not None:
            log.warning(
                "%s %s holds %d %s streams%s, the most one %s may: refusing more from it with 429 (more in the "
                "next minute are counted, not logged)%s",
                "client" if what == "address" else "network",
                who,
                cap,
                self.kind,
                with_cookie,
                what,
                held.text(),
            )
        return Refusal(
            429,
            f"Too many open {self.kind} streams{with_cookie} from your {what} ({cap}); close one, or try again "
            f"in {RETRY_AFTER_SECONDS} s",
        )
