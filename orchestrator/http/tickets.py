"""Stream tickets: short-lived, single-use values that let a read in once, for pages on another origin.

A page on another origin cannot open a protected event stream: ``EventSource`` sends no ``Authorization``
header, and the read cookie (``SameSite=Strict``) does not cross sites. So the page asks
``POST /api/stream-ticket`` with its bearer token (a POST: the guard checks the token and the origin) and
opens the stream as ``...?ticket=<value>``.

``<expiry>.<nonce>.<mac>``: the expiry in whole Unix seconds, 16 random hex digits (two tickets of one second
differ), and an HMAC-SHA256 (64 hex digits) of a purpose label, the port the browser addressed, the expiry
and the nonce, keyed with random bytes drawn when the service starts. So a ticket

- opens one read: a redeemed ticket is remembered until it expires (:data:`MAX_REMEMBERED` at most; beyond
  that a ticket is refused as busy rather than forgotten early, which would let it be used twice);
- opens nothing after :data:`LIFETIME`, after a restart, on another service or another port, and is never a
  read cookie, nor a read cookie a ticket (their own label, key and shape);
- says nothing about the token.

A URL may end up where a header would not (a proxy's access log, a browser's history), which is why a ticket
is worth one read for a minute and no more. Pure but for the key: the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

LIFETIME = timedelta(seconds=60)
"""Time to open the stream once the ticket is issued: a page asks right before it connects."""
KEY_BYTES = 32
NONCE_HEX_DIGITS = 16
MAC_HEX_DIGITS = 64
MAX_REMEMBERED = 20_000
"""Redeemed, unexpired tickets kept to refuse a second use (about 300 bytes each: 6 MB at most, measured): 300 streams
opened a second, every second, by clients that hold the token."""
PURPOSE = "snapshot stream ticket"


class TicketVerdict(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    """Made here, but too old: no guess, a page that waited too long."""
    USED = "used"
    """Made here and already redeemed: no guess, a browser that reconnected with the same URL."""
    FORGED = "forged"
    """Not made by this service (or not for this port): a guess."""
    BUSY = "busy"
    """Valid, but too many redeemed tickets are remembered to take one more: try again shortly."""


@dataclass(frozen=True, slots=True)
class Ticket:
    value: str
    expires: datetime


class StreamTickets:
    """Issues and redeems the stream tickets of one service's lifetime."""

    def __init__(self, lifetime: timedelta = LIFETIME, max_remembered: int = MAX_REMEMBERED) -> None:
        self.lifetime = lifetime
        self.max_remembered = max_remembered
        self._key = secrets.token_bytes(KEY_BYTES)
        self._used: set[str] = set()
        self._expiries: list[tuple[int, str]] = []
        """The redeemed tickets' MACs by expiry (a heap): forgotten once they could not open anything anyway."""

    @property
    def seconds(self) -> int:
        return int(self.lifetime.total_seconds())

    def issue(self, port: int, now: datetime) -> Ticket:
        expires = int(now.timestamp()) + self.seconds
        nonce = secrets.token_hex(NONCE_HEX_DIGITS // 2)
        return Ticket(f"{expires}.{nonce}.{self._mac(port, expires, nonce)}", datetime.fromtimestamp(expires, UTC))

    def redeem(self, value: str, port: int, now: datetime) -> TicketVerdict:
        """What ``value`` is worth for a read on ``port`` at ``now``; a valid one is used up by this call."""
        self._forget_expired(now)
        parts = _parts(value)
        if parts is None:
            return TicketVerdict.FORGED  # the shape is public: refusing it early gives nothing away
        expiry, nonce, mac = parts
        # Constant time over the MAC, whatever the expiry says: only a ticket known to be ours is told expired.
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(port, expiry, nonce).encode("ascii")):
            return TicketVerdict.FORGED
        if now.timestamp() >= expiry:
            return TicketVerdict.EXPIRED
        if mac in self._used:
            return TicketVerdict.USED
        if len(self._used) >= self.max_remembered:
            return TicketVerdict.BUSY
        self._used.add(mac)
        heapq.heappush(self._expiries, (expiry, mac))
        return TicketVerdict.VALID

    @property
    def remembered(self) -> int:
        return len(self._used)

    def _forget_expired(self, now: datetime) -> None:
        stamp = now.timestamp()
        while self._expiries and self._expiries[0][0] <= stamp:
            _, mac = heapq.heappop(self._expiries)
            self._used.discard(mac)

    def _mac(self, port: int, expires: int, nonce: str) -> str:
        message = f"{PURPOSE} {port} {expires} {nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def _parts(value: str) -> tuple[int, str, str] | None:
    """The expiry, nonce and MAC of a value of the right shape; ``None`` for anything else."""
    pieces = value.split(".")
    if len(pieces) != 3:
        return None
    expiry, nonce, mac = pieces
    if not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12:
        return None
    if len(nonce) != NONCE_HEX_DIGITS or not _is_hex(nonce) or len(mac) != MAC_HEX_DIGITS:
        return None
    return int(expiry), nonce, mac


def _is_hex(text: str) -> bool:
    return text.isascii() and all(c in "0123456789abcdef" for c in text)
