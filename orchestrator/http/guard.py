"""The HTTP guard: what every request passes before a route sees it.

Two middlewares, outermost first, and one response hook:

1. ``json_errors`` (orchestrator/http/errors.py): every error that the router or a handler raises (404, 405,
   413, ...) leaves as JSON ``{"success": false, "message": ...}`` with its headers (``Allow``, ``Retry-After``,
   ...) kept.
2. ``guard``: the ``Host`` check (DNS rebinding: ``foreign_host``), the body cap (by ``Content-Length``,
   before anything is read), CORS preflight answers, refusal of cross-site state-changing requests, the
   bearer token, and the trigger rate limit.
3. ``cors_headers`` (``on_response_prepare``): CORS headers for allowed origins on ``/api/*``, and the read
   cookie (below). It is a hook, not a middleware, because the event stream's handler sends its headers
   itself, before a middleware could add any.

The headers that tell a browser what it may do with the page (CSP, framing) are ``orchestrator/http/headers.py``.

The read cookie. ``EventSource`` cannot send headers, so a read under ``/api/`` that carries a valid bearer
header is answered with a cookie the stream can use instead (to be let in at all under ``--token-for-reads``;
else to use the part of the streams kept for it). Cookies ignore ports, so every other server on the same host
receives it under ``/api/``: what it learns there must not authorise a change, nor say anything about the
token, nor keep working. So the guard accepts it for reads only, and its value (``orchestrator/http/readcookie.py``)
is an expiry and a MAC keyed with random bytes drawn at start, never derived from the token: it expires after
12 hours (``Max-Age`` and a check here), a restart invalidates it, and another service never accepts it, even
one that shares the token. A read it let in is cut when it expires (an event stream would otherwise read on).
Its name carries the port the browser addressed (``snapshot_read_<port>``), so two services on one host each
keep their own.

Why not aiohttp-cors (0.8.1 runs cleanly on aiohttp 3.14, checked): it answers a refused preflight with a
plain-text 403, sends no ``Vary: Origin`` (so a cache may hand one origin's answer to another), must be
registered route by route, and knows nothing of refusing cross-site POSTs, which needs the same origin
decision anyway. The hand-rolled version is these few functions.

A state-changing request is any method but GET, HEAD and OPTIONS, on any path: a route added later is
guarded without anyone remembering to. Requests the router cannot match (404, 405) are answered as they
are: nothing would run, and the answer gives away nothing the token protects.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import datetime
from urllib.parse import urlsplit

from aiohttp import web

from orchestrator.config import Settings, is_loopback
from orchestrator.core.clock import Clock
from orchestrator.core.spell import Spell
from orchestrator.http.clientaddr import client_of, reached_over_https
from orchestrator.http.errors import Handler, json_error, json_errors
from orchestrator.http.guesses import Guesses, too_many_guesses
from orchestrator.http.hostheader import Addressed, is_ip, parse_host
from orchestrator.http.ratelimit import SlidingWindowLimit
from orchestrator.http.readcookie import ReadCookies, Verdict, expiry_of

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/"
TRIGGER_PATH = "/api/snapshot/trigger"
METRICS_PATH = "/metrics"
"""Outside ``/api/`` where Prometheus looks for it, but it tells what the status document tells: a read."""
READ_COOKIE_PREFIX = "snapshot_read_"
"""The read cookie is ``snapshot_read_<port>``: the port the browser addressed (``Host``)."""
LEGACY_TOKEN_COOKIE = "snapshot_token"
"""Where earlier pages put the token itself; never accepted, and expired wherever a browser still sends it."""
REALM = 'Bearer realm="snapshot-orchestrator"'
CORS_METHODS = "GET, POST"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
CORS_EXPOSE = "Retry-After, WWW-Authenticate, Idempotent-Replayed"
CORS_MAX_AGE_SECONDS = 600


class Guard:
    """The HTTP policy built from the settings; lives in the app under ``GUARD``."""

    def __init__(self, settings: Settings, clock: Clock, max_body_bytes: int) -> None:
        # Digests of equal length make the constant-time comparison independent of the token's length too.
        self._token = _digest(settings.token) if settings.token else None
        self._read_cookies = ReadCookies() if settings.token else None
        self.token_for_reads = settings.token_for_reads
        self.allow_origins = frozenset(settings.allow_origins)
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.triggers = SlidingWindowLimit(settings.trigger_limit)
        self.trigger_limit = settings.trigger_limit
        self._limiting = False
        # DNS rebinding: a page on evil.example whose name is made to resolve to 127.0.0.1 (or to this machine's
        # address on the LAN) is same-origin with us as far as the browser knows. Its requests still say
        # "Host: evil.example", so the Host is checked: on a service that only listens on loopback always, on
        # one that listens beyond it once --allowed-host names its names (without them nobody can tell which
        # names are ours, and the service warns at start).
        self.checks_host = is_loopback(settings.host) or bool(settings.allowed_hosts)
        origin_hosts = filter(None, (urlsplit(origin).hostname for origin in settings.allow_origins))
        self.allowed_hosts = frozenset(settings.allowed_hosts) | frozenset(origin_hosts)
        self._rebinding = Spell()
        self._guesses = Guesses()

    # ------------------------------------------------------------------------------------------ the token
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
        earns the response a fresh one (see ``cors_headers``)."""
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
        if self._read_cookie_verdict(request) is Verdict.VALID:
            request[AUTHENTICATED] = True
        return None

    def _unauthorized(self, message: str, *, invalid: bool = False) -> web.Response:
        challenge = REALM + (', error="invalid_token"' if invalid else "")
        return json_error(401, message, {"WWW-Authenticate": challenge})

    # ----------------------------------------------------------------------------------------- hosts
    def foreign_host(self, request: web.Request) -> str | None:
        """The Host a request names, if the service checks it and it is not one of our names.

        An IP address is always ours: a rebinding page needs a DNS name (it is the page's origin), and a
        browser that addressed an IP reached this service by it."""
        if not self.checks_host:
            return None
        host = addressed(request).host
        if host == "localhost" or host.endswith(".localhost") or is_ip(host) or host in self.allowed_hosts:
            return None
        held = self._rebinding.hit(host, self.clock.now())
        if held is not None:  # one line a minute, not one per request of a page that keeps trying
            log.warning(
                "refusing requests for host %r: not a loopback name, an IP address, an --allowed-host nor an "
                "--allow-origin host%s",
                host,
                held.text(),
            )
        return host

    # --------------------------------------------------------------------------------------- origins
    def origin_allowed(self, request: web.Request, origin: str) -> bool:
        origin = origin.lower()
        return origin == own_origin(request) or origin in self.allow_origins

    def cross_site(self, request: web.Request) -> str | None:
        """Why a state-changing request looks like another site's page sent it, or ``None``."""
        origin = request.headers.get("Origin")
        if origin is not None:
            return None if self.origin_allowed(request, origin) else f"origin {origin} is not allowed"
        # No Origin: curl and scripts send neither header. A browser sends Sec-Fetch-Site; "same-site" covers
        # another port on the same host, which is a different origin all the same.
        site = request.headers.get("Sec-Fetch-Site", "").lower()
        return f"Sec-Fetch-Site is {site}" if site in ("cross-site", "same-site") else None

    def preflight(self, request: web.Request, origin: str) -> web.StreamResponse:
        if not self.origin_allowed(request, origin):
            return json_error(403, f"Origin {origin} may not call this API (see --allow-origin)")
        # cors_headers adds Access-Control-Allow-Origin, -Credentials and Vary to this response as it is sent.
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
            },
        )

    # ------------------------------------------------------------------------------------- rate limit
    def admit_trigger(self) -> web.Response | None:
        admission = self.triggers.admit(self.clock.now())
        if admission.allowed:
            self._limiting = False
            return None
        if not self._limiting:  # one line per burst, not one per refused request
            self._limiting = True
            log.warning("more than %d HTTP triggers in a minute; refusing more with 429", self.trigger_limit)
        return json_error(
            429,
            f"Too many triggers: at most {self.trigger_limit} a minute. Try again in {admission.retry_after} s.",
            {"Retry-After": str(admission.retry_after)},
        )


GUARD = web.AppKey("guard", Guard)
ISSUE_READ_COOKIE = web.RequestKey("issue_read_cookie", bool)
"""Set on a read that a valid bearer header let in: its answer sets the read cookie."""
AUTHENTICATED = web.RequestKey("authenticated", bool)
"""Set on a request that carried the token (or, for a read, the read cookie): the stream caps keep room for
these, the most for the bearer token (orchestrator/http/streamlimits.py). Absent: anonymous."""
BEARER = web.RequestKey("bearer", bool)
"""Set on a request that carried the token itself (``Authorization: Bearer``), not only the read cookie: the
cookie reaches every server on the host, so what it opens is capped per address like anonymous streams."""
READ_COOKIE_EXPIRES = web.RequestKey("read_cookie_expires", datetime)
"""Set on a read that a valid read cookie let in: its connection is closed then (``_until_expiry``)."""


def install(app: web.Application, guard: Guard) -> None:
    app[GUARD] = guard
    app.middlewares.extend([json_errors, guard_requests])
    app.on_response_prepare.append(cors_headers)


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


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}".lower()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
        and request.path.startswith(API_PREFIX)
    )


# ------------------------------------------------------------------------------------------ middlewares
@web.middleware
async def guard_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    if request.get(ADDRESSED) is None:
        parsed = parse_host(request.host)
        if parsed is None:
            # aiohttp would raise (a port of 99999, non-ASCII) wherever request.url is first asked for: a 500.
            log.debug(
                "refused %s %s from %s: Host %r", request.method, request.path, client_of(request).address, request.host
            )
            return json_error(
                400, f"The Host header must be a host name and an optional port, got {request.host[:100]!r}"
            )
        request[ADDRESSED] = parsed
    host = guard.foreign_host(request)
    if host is not None:
        return json_error(403, f"Host {host} is not a name of this service; see --allowed-host")
    # Chunked bodies have no length; the handler's read() stops them at client_max_size (json_errors → 413).
    if request.content_length is not None and request.content_length > guard.max_body_bytes:
        return json_error(413, f"Request body too large: at most {guard.max_body_bytes} bytes")
    if _is_preflight(request) and not isinstance(request.match_info.http_exception, web.HTTPNotFound):
        return guard.preflight(request, request.headers["Origin"])
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404 / 405: nothing runs
    if request.method not in SAFE_METHODS:
        why = guard.cross_site(request)
        if why is not None:
            log.debug("refused %s %s from %s: %s", request.method, request.path, client_of(request).address, why)
            return json_error(403, f"Cross-site request refused: {why} (see --allow-origin)")
        refusal = guard.authenticate(request, cookie_ok=False)
        if refusal is not None:
            return refusal
        if request.path == TRIGGER_PATH:
            refusal = guard.admit_trigger()
            if refusal is not None:
                return refusal
    elif request.path.startswith(API_PREFIX) or request.path == METRICS_PATH:
        refusal = guard.authenticate(request, cookie_ok=True) if guard.token_for_reads else guard.recognise(request)
        if refusal is not None:
            return refusal
        expires = request.get(READ_COOKIE_EXPIRES)
        if expires is not None:
            return await _until_expiry(request, handler, guard.clock, expires)
    return await handler(request)


async def _until_expiry(request: web.Request, handler: Handler, clock: Clock, expires: datetime) -> web.StreamResponse:
    """Answer a read the read cookie let in, and close its connection if the cookie expires first: an event
    stream opened with it would otherwise read on for as long as the service runs. A browser reconnects, is
    refused, and the page gets a new cookie with its token."""

    def close(expired: asyncio.Task[bool]) -> None:
        if expired.cancelled() or request.transport is None or request.transport.is_closing():
            return
        log.info(
            "closing %s of %s: the read cookie it was opened with has expired", request.path, client_of(request).address
        )
        request.transport.close()

    expired = asyncio.create_task(
        clock.wait(asyncio.Event(), expires), name=f"read cookie expiry {client_of(request).address}"
    )
    expired.add_done_callback(close)
    try:
        return await handler(request)
    finally:
        expired.cancel()


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    guard = request.app.get(GUARD)
    if guard is None or not request.path.startswith(API_PREFIX):
        return
    _read_cookie_headers(guard, request, response)
    if not guard.allow_origins:
        return
    vary = response.headers.get("Vary")
    if vary is None:
        response.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin"
    origin = request.headers.get("Origin", "")
    if origin.lower() not in guard.allow_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
    if guard.token_for_reads:  # the page's cookie is then a credential the other origin's reads may carry
        response.headers["Access-Control-Allow-Credentials"] = "true"


def _read_cookie_headers(guard: Guard, request: web.Request, response: web.StreamResponse) -> None:
    # Added as headers: aiohttp has already turned ``response.cookies`` into headers when this hook runs.
    if LEGACY_TOKEN_COOKIE in request.cookies:  # an earlier page's cookie holds the token itself: drop it
        response.headers.add("Set-Cookie", _set_cookie(LEGACY_TOKEN_COOKIE, "", max_age=0))
    if not request.get(ISSUE_READ_COOKIE) or response.status >= 400:
        return
    cookie = guard.read_cookie(request)
    if cookie is None:
        return
    # HttpOnly: the page never reads it, so no script on it can either. When it has expired, the page, which
    # keeps the token, gets a new one with one bearer request as soon as the stream is refused.
    name, value, max_age = cookie
    # Secure when the browser came over HTTPS, also through a TLS-terminating --trusted-proxy: an attacker who
    # can inject a plain http:// request to this host then never gets the cookie sent in clear.
    response.headers.add("Set-Cookie", _set_cookie(name, value, max_age=max_age, secure=reached_over_https(request)))


def _set_cookie(name: str, value: str, *, max_age: int | None = None, secure: bool = False) -> str:
    """A ``Set-Cookie`` value; names and values here are fixed words, digits and dots: nothing needs quoting."""
    attributes = [f"{name}={value}", f"Path={API_PREFIX}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        attributes.append(f"Max-Age={max_age}")
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)
