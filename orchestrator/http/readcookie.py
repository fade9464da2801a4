"""The read cookie's value: made and checked with a key that exists only in this service's memory.

``<expiry>.<mac>``: the expiry in whole Unix seconds, and an HMAC-SHA256 (64 hex digits) of the port the
browser addressed and that expiry, keyed with 32 random bytes drawn when the service starts. So a cookie

- opens nothing once it has expired (the browser drops it then too: ``Max-Age``);
- opens nothing after a restart (a new key), nor on another service, even one that shares the token (its own
  key): the token alone derives nothing, so a cookie that leaks to any server on the host (cookies ignore
  ports) is worth one service's reads for at most ``LIFETIME``, and knowing the token forges nothing;
- says nothing about the token.

Pure but for the key: the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

LIFETIME = timedelta(hours=12)
"""A page that stays open longer asks again with its bearer token when the stream is refused (web/lib/stream.js)."""
KEY_BYTES = 32
MAC_HEX_DIGITS = 64


class Verdict(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    """Made by this service, but too old: no guess, a page that kept it too long."""
    FORGED = "forged"
    """Not made by this service (or not for this port): counts as a guess."""


def expiry_of(value: str) -> datetime:
    """When a value that :meth:`ReadCookies.check` found valid expires."""
    return datetime.fromtimestamp(int(value.partition(".")[0]), UTC)


class ReadCookies:
    """Issues and checks read cookie values for one service's lifetime."""

    def __init__(self, lifetime: timedelta = LIFETIME) -> None:
        self.lifetime = lifetime
        self._key = secrets.token_bytes(KEY_BYTES)

    @property
    def max_age(self) -> int:
        """The cookie's ``Max-Age``, in whole seconds."""
        return int(self.lifetime.total_seconds())

    def issue(self, port: int, now: datetime) -> str:
        expires = int(now.timestamp()) + self.max_age
        return f"{expires}.{self._mac(port, expires)}"

    def check(self, value: str, port: int, now: datetime) -> Verdict:
        expiry, dot, mac = value.partition(".")
        if not dot or not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12 or len(mac) != MAC_HEX_DIGITS:
            return Verdict.FORGED  # the shape is public: refusing it early gives nothing away
        expires = int(expiry)
        # Constant time over the MAC, whatever the expiry says: the expiry is checked only once it is known
        # to be ours, so an old cookie of this service is told apart from a forgery.
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(port, expires).encode("ascii")):
            return Verdict.FORGED
        return Verdict.VALID if now.timestamp() < expires else Verdict.EXPIRED

    def _mac(self, port: int, expires: int) -> str:
        return hmac.new(self._key, f"snapshot read {port} {expires}".encode(), hashlib.sha256).hexdigest()
