"""Who a request is: the bearer token, the read cookie, a stream ticket (a read's ``?ticket=``:
orchestrator/http/tickets.py), or nobody (the guard's token rules, orchestrator/http/guard.py).

A wrong bearer token is a guess, counted per client address (orchestrator/http/guesses.py); a read cookie that
is not valid is none (see the guard's docstring for why). What a request proved is kept on it under the request
keys below, for the stream rooms (orchestrator/http/streamlimits.py) and the read cookie's answer.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from aiohttp import hdrs, web

from orchestrator.core.clock import Clock
from orchestrator.http.clientaddr import client_of, reached_over_https
from orchestrator.http.errors import json_error
from orchestrator.http.guesses import Guesses, too_many_guesses
from orchestrator.http.hostheader import Addressed, parse_host
from orchestrator.http.readcookie import LIFETIME, ReadCookies, Verdict, expiry_of
from orchestrator.http.tickets import StreamTickets, Ticket, TicketVerdict

READ_COOKIE_PREFIX = "snapshot_read_"
"""The read cookie is ``snapshot_read_<port>``: the port the browser addressed (``Host``)."""
LEGACY_TOKEN_COOKIE = "snapshot_token"
"""Where earlier pages put the token itself; never accepted, and expired wherever a browser still sends it."""
REALM = 'Bearer realm="snapshot-orchestrator"'
COOKIE_PATH = "/api/"
"""Where the read cookie is sent: the API (the guard's ``API_PREFIX``), not the page's files."""
TICKET_PARAM = "ticket"
"""The query parameter of a read opened with a stream ticket (orchestrator/http/tickets.py)."""


class Tokens:
    """The token check of one service (nothing is checked without a token)."""

    def __init__(self, token: str | None, clock: Clock) -> None:
        # Digests of equal length make the constant-time comparison independent of the token's length too.
        self._token = _digest(token) if token else None
        self._read_cookies = ReadCookies() if token else None
        self._tickets = StreamTickets() if token else None
        self.clock = clock
        self._guesses = Guesses()

    @property
    def checked(self) -> bool:
        """Whether the service has a token: without one nothing is checked, and no request is marked."""
        return self._token is not None

    def _matches(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(_digest(given), self._token)

    def _bearer(self, request: web.Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def read_cookie(self, request: web.Request) -> tuple[str, str, int] | None:
        """A fresh read cookie's name, value and ``Max-Age`` for the port ``request`` addressed; ``None``
        without a token."""
        if self._read_cookies is None:
            return None
        port = addressed_port(request)
        value = self._read_cookies.issue(port, self.clock.now())
        return f"{READ_COOKIE_PREFIX}{port}", value, self._read_cookies.max_age

    def stream_ticket(self, request: web.Request) -> Ticket | None:
        """A fresh stream ticket for the port ``request`` addressed; ``None`` without a token."""
        if self._tickets is None:
            return None
        return self._tickets.issue(addressed_port(request), self.clock.now())

    def _ticket_verdict(self, request: web.Request) -> TicketVerdict | None:
        """What the request's ``?ticket=`` is worth (a valid one is used up); ``None`` if it has none. A read it
        lets in is cut after the read cookie's lifetime (``READ_COOKIE_EXPIRES``), as one the cookie let in."""
        if self._tickets is None or TICKET_PARAM not in request.query:
            return None
        now = self.clock.now()
        verdict = self._tickets.redeem(request.query[TICKET_PARAM], addressed_port(request), now)
        if verdict is TicketVerdict.VALID:
            request[AUTHENTICATED] = True
            request[READ_COOKIE_EXPIRES] = now + self._read_cookies_lifetime()
        return verdict

    def _read_cookies_lifetime(self) -> timedelta:
        return self._read_cookies.lifetime if self._read_cookies is not None else LIFETIME

    def _ticket_refusal(self, verdict: TicketVerdict, client: str) -> web.Response | None:
        """The answer to a read whose ticket is not valid (``None``: it is)."""
        if verdict is TicketVerdict.VALID:
            return None
        if verdict is TicketVerdict.BUSY:
            return json_error(503, "Too many stream tickets in use; try again in 1 s", {"Retry-After": "1"})
        if verdict is TicketVerdict.FORGED:
            # A guess, like a wrong token: a ticket is only ever a value this service handed out a minute ago.
            return self._guesses.refused(client, self.clock.now()) or self._unauthorized(
                "The stream ticket is not valid; ask POST /api/stream-ticket for a new one", invalid=True
            )
        return self._unauthorized(  # ours, only old or spent: no guess (a browser reconnects with the same URL)
            "The stream ticket has expired or was already used; ask POST /api/stream-ticket for a new one",
            invalid=True,
        )

    def _read_cookie_verdict(self, request: web.Request) -> Verdict | None:
        """What the request's read cookie is worth; ``None`` if it has none. A valid one's expiry is kept on
        the request (``READ_COOKIE_EXPIRES``).

        Every value sent under the cookie's name counts, not only the one aiohttp keeps (the last): another
        page on the host can set a cookie of the same name (cookies ignore ports; a sibling subdomain can set
        one for the parent domain), and the browser then sends both. One valid value is enough."""
        if self._read_cookies is None:
            return None
        port = addressed_port(request)
        given = _cookie_values(request, f"{READ_COOKIE_PREFIX}{port}")
        if not given:
            return None
        now = self.clock.now()
        verdicts = {value: self._read_cookies.check(value, port, now) for value in given}
        for value, verdict in verdicts.items():
            if verdict is Verdict.VALID:
                request[READ_COOKIE_EXPIRES] = expiry_of(value)
                return verdict
        return Verdict.EXPIRED if Verdict.EXPIRED in verdicts.values() else Verdict.FORGED

    def authenticate(self, request: web.Request, *, cookie_ok: bool) -> web.Response | None:
        """``None`` if the request may go on, else the 401 to send.

        ``cookie_ok`` (reads under --token-for-reads): the read cookie is accepted, and a valid bearer header
        earns the response a fresh one (see ``Guard.answer_headers``)."""
        if self._token is None:
            return None
        client = client_of(request).key  # behind a --trusted-proxy, the forwarded client; an IPv6 /64
        now = self.clock.now()
        bearer = self._bearer(request)
        wait = self._guesses.blocked(client, now) if bearer is not None or cookie_ok else None
        if wait is not None:
            # Before any comparison: a client that keeps guessing gets nothing more to measure.
            return too_many_guesses(wait)
        if bearer is not None:
            if not self._matches(bearer):
                return self._guesses.refused(client, now) or self._unauthorized("The token is not valid", invalid=True)
            if cookie_ok:
                request[ISSUE_READ_COOKIE] = True
            request[AUTHENTICATED] = True
            request[BEARER] = True
            return None
        if cookie_ok:
            ticket = self._ticket_verdict(request)
            if ticket is not None:
                return self._ticket_refusal(ticket, client)
            verdict = self._read_cookie_verdict(request)
            if verdict is Verdict.VALID:
                request[AUTHENTICATED] = True
                return None
            if verdict is Verdict.EXPIRED:  # ours, only old: no guess
                return self._unauthorized(
                    "The read cookie has expired: send 'Authorization: Bearer <token>' for a new one", invalid=True
                )
            if verdict is Verdict.FORGED:
                # No guess: nobody guesses a 256-bit MAC, and a browser sends whatever cookie another page on
                # the host planted under this name. Counted, 20 of them would lock the page's address out of
                # its own token for a minute; and a restart turns every open page's cookie into this.
                return self._unauthorized(
                    "The read cookie is not valid: send 'Authorization: Bearer <token>' for a new one", invalid=True
                )
        elif any(name == LEGACY_TOKEN_COOKIE or name.startswith(READ_COOKIE_PREFIX) for name in request.cookies):
            # Browsers send cookies on their own, so a cookie proves nothing about who asked for a change.
            return self._unauthorized(
                "Changes need the token as 'Authorization: Bearer <token>'; cookies are not accepted for them"
            )
        return self._unauthorized("This needs the service's token: send 'Authorization: Bearer <token>'")

    def recognise(self, request: web.Request) -> web.Response | None:
        """On a read that is open to all: mark it ``AUTHENTICATED`` if it carries the token or the read cookie
        (its stream may then use the room kept for them), else let it go on as anonymous. A wrong bearer token
        still counts as a guess, so an open read is no place to try tokens at full speed: the 429 of a client
        that keeps guessing is the one answer returned. A wrong read cookie (another port's, an old token's) is
        no guess: it cannot be guessed, and a browser sends it by itself."""
        if self._token is None:
            return None
        if self._bearer(request) is not None:
            refusal = self.authenticate(request, cookie_ok=True)
            return refusal if refusal is not None and refusal.status == 429 else None
        ticket = self._ticket_verdict(request)
        if ticket is not None:  # else anonymous, as the read is open to all; a forged one still counts
            refusal = self._ticket_refusal(ticket, client_of(request).key) if ticket is TicketVerdict.FORGED else None
            return refusal if refusal is not None and refusal.status == 429 else None
        if self._read_cookie_verdict(request) is Verdict.VALID:
            request[AUTHENTICATED] = True
        return None

    def cookie_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """The read cookie's ``Set-Cookie`` on an answer to a read a bearer header let in, and the legacy cookie
        expired wherever a browser still sends it; called as an answer under ``/api/`` is sent."""
        # Added as headers: aiohttp has already turned ``response.cookies`` into headers when this hook runs.
        if hdrs.COOKIE in request.headers and LEGACY_TOKEN_COOKIE in request.cookies:
            response.headers.add("Set-Cookie", _set_cookie(LEGACY_TOKEN_COOKIE, "", max_age=0))  # it holds the token
        if self._token is None or not request.get(ISSUE_READ_COOKIE) or response.status >= 400:
            return
        cookie = self.read_cookie(request)
        if cookie is None:
            return
        # HttpOnly: the page never reads it, so no script on it can either. When it has expired, the page, which
        # keeps the token, gets a new one with one bearer request as soon as the stream is refused.
        name, value, max_age = cookie
        # Secure when the browser came over HTTPS, also through a TLS-terminating --trusted-proxy: an attacker
        # who can inject a plain http:// request to this host then never gets the cookie sent in clear.
        secure = reached_over_https(request)
        response.headers.add("Set-Cookie", _set_cookie(name, value, max_age=max_age, secure=secure))

    def _unauthorized(self, message: str, *, invalid: bool = False) -> web.Response:
        challenge = REALM + (', error="invalid_token"' if invalid else "")
        return json_error(401, message, {"WWW-Authenticate": challenge})


ISSUE_READ_COOKIE = web.RequestKey("issue_read_cookie", bool)
"""Set on a read that a valid bearer header let in: its answer sets the read cookie."""
AUTHENTICATED = web.RequestKey("authenticated", bool)
"""Set on a request that carried the token (or, for a read, the read cookie): the stream caps keep room for
these, the most for the bearer token (orchestrator/http/streamlimits.py). Absent: anonymous."""
BEARER = web.RequestKey("bearer", bool)
"""Set on a request that carried the token itself (``Authorization: Bearer``), not only the read cookie: the
cookie reaches every server on the host, so what it opens is capped per address like anonymous streams."""
READ_COOKIE_EXPIRES = web.RequestKey("read_cookie_expires", datetime)
"""Set on a read that a valid read cookie let in (its expiry), or a stream ticket (the cookie's lifetime from
when it opened): its connection is closed then (``_until_expiry``)."""


ADDRESSED = web.RequestKey("addressed", Addressed)
"""What the request's Host names, parsed once by the guard (see orchestrator/http/hostheader.py)."""


def addressed(request: web.Request) -> Addressed:
    """The host and port the request addressed; a Host that cannot be parsed counts as none at all."""
    parsed = request.get(ADDRESSED) or parse_host(request.host)
    return parsed if parsed is not None else Addressed("", None)


def addressed_port(request: web.Request) -> int:
    """The port the browser addressed, which names the read cookie (a browser leaves out the default)."""
    return addressed(request).port_or(443 if request.secure else 80)


def _cookie_values(request: web.Request, name: str) -> list[str]:
    """Every value sent under cookie ``name``, in every ``Cookie`` header (names and values here are plain
    words: no quoting to undo)."""
    values = []
    for header in request.headers.getall("Cookie", ()):
        for pair in header.split(";"):
            key, eq, value = pair.strip().partition("=")
            if eq and key == name:
                values.append(value.strip().strip('"'))
    return values[:8]  # a handful is all a browser sends; a header of thousands is not ours to check


def _set_cookie(name: str, value: str, *, max_age: int | None = None, secure: bool = False) -> str:
    """A ``Set-Cookie`` value; names and values here are fixed words, digits and dots: nothing needs quoting."""
    attributes = [f"{name}={value}", f"Path={COOKIE_PATH}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        attributes.append(f"Max-Age={max_age}")
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
