"""The HTTP guard: what every request passes before a route sees it.

One middleware (``guard_requests``: the two below, outermost first, in one layer and one coroutine) and one
response hook:

1. what ``json_errors`` does (orchestrator/http/errors.py): every error that the router or a handler raises (404,
   405, 413, ...) leaves as JSON ``{"success": false, "message": ...}`` with its headers (``Allow``,
   ``Retry-After``, ...) kept.
2. the guard: the ``Host`` check (DNS rebinding: ``foreign_host``), the body cap (by ``Content-Length``,
   before anything is read), CORS preflight answers, refusal of cross-site state-changing requests, the
   bearer token, and the trigger rate limit (one limit for the triggers of every job, whichever path they take:
   a flood spread over the jobs is the same flood).
3. ``Guard.answer_headers`` (in ``on_response_prepare``, called by the one hook of orchestrator/http/headers.py):
   CORS headers for allowed origins on ``/api/*``, and the read cookie (below). It is a hook, not a middleware,
   because the event stream's handler sends its headers itself, before a middleware could add any.

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

Stream tickets. The read cookie is ``SameSite=Strict``: a page on another origin never sends it. Such a page
asks ``POST /api/stream-ticket`` with its bearer token and opens the stream with ``?ticket=<value>``: a value
(``orchestrator/http/tickets.py``) good for one read within a minute, accepted wherever the read cookie is, and
a read it opened is cut after the cookie's lifetime. A forged one counts as a guess; an expired or spent one
does not (a browser's ``EventSource`` reconnects with the same URL).

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
import logging
from datetime import datetime
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from orchestrator.config import HttpSettings, is_loopback
from orchestrator.core.clock import Clock
from orchestrator.core.spell import Spell
from orchestrator.core.streak import Streak
from orchestrator.http.auth import (
    ADDRESSED,
    READ_COOKIE_EXPIRES,
    Tokens,
    addressed,
)
from orchestrator.http.clientaddr import client_of
from orchestrator.http.errors import ApiError, Handler, error_answer, json_error
from orchestrator.http.hostheader import Addressed, is_ip, parse_host
from orchestrator.http.ratelimit import SlidingWindowLimit

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/"
TRIGGER_PATH = "/api/snapshot/trigger"
TRIGGER_ROUTES = frozenset({TRIGGER_PATH, "/api/jobs/{job}/trigger"})
"""The trigger's routes, as the router names them: the default job's and every job's."""
METRICS_PATH = "/metrics"
"""Outside ``/api/`` where Prometheus looks for it, but it tells what the status document tells: a read."""
BADGE_PREFIX = "/badge/"
"""The status badges (orchestrator/http/badge.py): what the status document tells, as a picture: a read."""
CORS_METHODS = "GET, POST"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
CORS_EXPOSE = "Retry-After, WWW-Authenticate, Idempotent-Replayed"
CORS_MAX_AGE_SECONDS = 600
KNOWN_HOSTS = 64
"""``Host`` values of ours remembered as parsed (then forgotten all at once, and learnt again)."""


class Guard:
    """The HTTP policy built from the settings; lives in the app under ``GUARD``."""

    def __init__(self, settings: HttpSettings, clock: Clock, max_body_bytes: int) -> None:
        self.tokens = Tokens(settings.token, clock)
        self.token_for_reads = settings.token_for_reads
        self.allow_origins = frozenset(settings.allow_origins)
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.triggers = SlidingWindowLimit(settings.trigger_limit)
        self.trigger_limit = settings.trigger_limit
        self._limiting = Streak()
        """Refusing triggers over the limit: one line per burst, not one per refused request."""
        # DNS rebinding: a page on evil.example whose name is made to resolve to 127.0.0.1 (or to this machine's
        # address on the LAN) is same-origin with us as far as the browser knows. Its requests still say
        # "Host: evil.example", so the Host is checked: on a service that only listens on loopback always, on
        # one that listens beyond it once --allowed-host names its names (without them nobody can tell which
        # names are ours, and the service warns at start).
        self.checks_host = is_loopback(settings.host) or bool(settings.allowed_hosts)
        origin_hosts = filter(None, (urlsplit(origin).hostname for origin in settings.allow_origins))
        self.allowed_hosts = frozenset(settings.allowed_hosts) | frozenset(origin_hosts)
        self._rebinding = Spell()
        self._ours: dict[str, Addressed] = {}
        """``Host`` values seen that are names of ours, as parsed: a client sends the same one every time."""
        self.checks_tokens = self.tokens.checked
        self._answers_vary = bool(self.allow_origins) or self.checks_tokens
        """Whether an answer may get CORS headers or a read cookie (else only the legacy cookie's removal)."""

    # ---------------------------------------------------------------------------------------- requests
    @web.middleware
    async def guard_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The guard, and around it what ``json_errors`` does: the app's one middleware, one coroutine (each
        layer costs every request a turn), bound to its guard (no lookup in the app per request)."""
        try:
            refusal = self.refusal(request)
            if refusal is not None:
                return refusal
            # Set only on a read the read cookie or a stream ticket let in (Tokens.authenticate, recognise).
            expires = request.get(READ_COOKIE_EXPIRES) if self.checks_tokens else None
            if expires is not None:
                return await _until_expiry(request, handler, self.clock, expires)
            return await handler(request)
        except (ApiError, web.HTTPException) as exc:
            return error_answer(request, exc)

    def refusal(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to a request the guard stops (or a preflight's), else ``None``: the handler may run."""
        addressed = self._ours.get(request.host)  # (a client sends the same Host every time)
        if addressed is None:
            parsed = self.ours(request)
            if isinstance(parsed, web.Response):
                return parsed
            addressed = parsed
        request[ADDRESSED] = addressed
        # Chunked bodies have no length; the handler's read() stops them at client_max_size (errors.py's 413).
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            return json_error(413, f"Request body too large: at most {self.max_body_bytes} bytes")
        method, unmatched = request.method, request.match_info.http_exception
        if method == "OPTIONS" and _is_preflight(request) and not isinstance(unmatched, web.HTTPNotFound):
            return self.preflight(request, request.headers["Origin"])
        if unmatched is not None:
            return None  # 404 / 405: nothing runs, the router's answer is raised
        if method not in SAFE_METHODS:
            why = self.cross_site(request)
            if why is not None:
                log.debug("refused %s %s from %s: %s", method, request.path, client_of(request).address, why)
                return json_error(403, f"Cross-site request refused: {why} (see --allow-origin)")
            refusal = self.tokens.authenticate(request, cookie_ok=False)
            if refusal is None and is_trigger(request):
                refusal = self.admit_trigger()
            return refusal
        if self.checks_tokens and is_read(request.path):  # (without a token a read is nobody's business)
            if self.token_for_reads:
                return self.tokens.authenticate(request, cookie_ok=True)
            return self.tokens.recognise(request)
        return None

    # ----------------------------------------------------------------------------------------- hosts
    def ours(self, request: web.Request) -> Addressed | web.Response:
        """What the request's ``Host`` names, if it is one of our names; else the 400 or 403 to answer."""
        text = request.host
        parsed = parse_host(text)
        if parsed is None:
            # aiohttp would raise (a port of 99999, non-ASCII) wherever request.url is first asked for: a 500.
            log.debug("refused %s %s from %s: Host %r", request.method, request.path, client_of(request).address, text)
            return json_error(400, f"The Host header must be a host name and an optional port, got {text[:100]!r}")
        request[ADDRESSED] = parsed  # (what foreign_host reads)
        host = self.foreign_host(request)
        if host is not None:
            return json_error(403, f"Host {host} is not a name of this service; see --allowed-host")
        if len(self._ours) >= KNOWN_HOSTS:
            self._ours.clear()  # a client making up names of ours (ports, spellings) only costs the parse
        self._ours[text] = parsed
        return parsed

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
        # answer_headers adds Access-Control-Allow-Origin, -Credentials and Vary to this response as it is sent.
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
            self._limiting.recovered()
            return None
        if self._limiting.failed():
            log.warning("more than %d HTTP triggers in a minute; refusing more with 429", self.trigger_limit)
        return json_error(
            429,
            f"Too many triggers: at most {self.trigger_limit} a minute. Try again in {admission.retry_after} s.",
            {"Retry-After": str(admission.retry_after)},
        )

    # ---------------------------------------------------------------------------------------- answers
    def answer_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """CORS headers for allowed origins on ``/api/*``, and the read cookie: called as every answer is sent
        (orchestrator/http/headers.py). Without a token and allowed origins, only a request with a cookie can
        need any (the legacy cookie's removal): every other answer is left as it is at once."""
        if (not self._answers_vary and hdrs.COOKIE not in request.headers) or not request.path.startswith(API_PREFIX):
            return
        self.tokens.cookie_headers(request, response)
        if not self.allow_origins:
            return
        vary = response.headers.get("Vary")
        if vary is None:
            response.headers["Vary"] = "Origin"
        elif "origin" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Origin"
        origin = request.headers.get("Origin", "")
        if origin.lower() not in self.allow_origins:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
        if self.token_for_reads:  # the page's cookie is then a credential the other origin's reads may carry
            response.headers["Access-Control-Allow-Credentials"] = "true"


GUARD = web.AppKey("guard", Guard)


def install(app: web.Application, guard: Guard) -> None:
    app[GUARD] = guard
    app.middlewares.append(guard.guard_requests)  # answer_headers: called by the answers' one hook (headers.py)


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}".lower()


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
        and request.path.startswith(API_PREFIX)
    )


# ------------------------------------------------------------------------------------- what it asks
def is_trigger(request: web.Request) -> bool:
    """Whether ``request`` asks a job for a run (by the route it matched, so however its path is spelled)."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in TRIGGER_ROUTES


def is_read(path: str) -> bool:
    """Whether a GET of ``path`` tells what the token protects under --token-for-reads."""
    return path.startswith((API_PREFIX, BADGE_PREFIX)) or path == METRICS_PATH


async def _until_expiry(request: web.Request, handler: Handler, clock: Clock, expires: datetime) -> web.StreamResponse:
    """Answer a read the read cookie (or a stream ticket) let in, and close its connection if the cookie
    expires first (the ticket's read: after the cookie's lifetime): an event stream opened with it would
    otherwise read on for as long as the service runs. A browser reconnects, is refused, and the page gets a
    new cookie (or ticket) with its token."""

    def close(expired: asyncio.Task[bool]) -> None:
        if expired.cancelled() or request.transport is None or request.transport.is_closing():
            return
        log.info(
            "closing %s of %s: the read cookie or stream ticket it was opened with has expired",
            request.path,
            client_of(request).address,
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
