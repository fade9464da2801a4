"""Headers on every answer that tell a browser what it may do with the page: where it may be framed, what it
may load and run, and what it may guess or pass on.

- **Framing.** ``Content-Security-Policy: frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` (for
  browsers without CSP level 2): no other page may show ours in a frame. Framed, its buttons start, pause and
  cancel runs with the token the page has stored, for whoever lured a click onto them (a page on another port
  of the same host is enough). With ``--frame-ancestor`` the listed origins may frame it: ``frame-ancestors``
  names them, and ``X-Frame-Options`` is left out (it cannot name an origin; ``DENY`` would win in browsers
  that only know it).
- **The page's own policy.** Scripts, styles and everything else from the service itself only, no inline
  script or style (the page has none: its markup carries no ``style=`` attribute nor handler; styles set from
  its script through ``element.style`` are not inline markup), ``data:`` images (the empty favicon), no
  plugins, no ``<base>``, forms submitted to the service only. A script slipped into the page some other way
  (a job's output shown as HTML by a later change, say) would not run.
- ``X-Content-Type-Options: nosniff``: a log shown as ``text/plain`` is never taken for HTML or script.
- ``Referrer-Policy: no-referrer``: the page's address (and a run id in it) goes nowhere else.

Set with ``setdefault`` in ``on_response_prepare``: every answer gets them, the event stream's too (its handler
sends its headers itself), and a handler that sets one of its own keeps it. The same hook first calls what else
adds headers to every answer (``also``: the guard's CORS headers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import hdrs, web

PAGE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)


def content_security_policy(frame_ancestors: Sequence[str] = ()) -> str:
    ancestors = " ".join(frame_ancestors) or "'none'"
    return "; ".join((*PAGE_POLICY, f"frame-ancestors {ancestors}"))


def security_headers(frame_ancestors: Sequence[str] = ()) -> dict[str, str]:
    """The headers for every answer; ``frame_ancestors`` are origins (``--frame-ancestor``) that may frame it.
    (Named by aiohttp's ``istr`` constants: a header dict then finds them without folding their case again.)"""
    headers: dict[str, str] = {
        hdrs.CONTENT_SECURITY_POLICY: content_security_policy(frame_ancestors),
        hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff",
        hdrs.REFERRER_POLICY: "no-referrer",
    }
    if not frame_ancestors:
        headers[hdrs.X_FRAME_OPTIONS] = "DENY"
    return headers


class AnswerHeaders:
    """The one hook: what else adds headers to every answer (``also``: the guard's CORS headers), then these.
    Everything it needs is at hand: each hook, and each lookup in it, costs every request a turn."""

    __slots__ = ("also", "headers")

    def __init__(
        self,
        frame_ancestors: Sequence[str] = (),
        also: Sequence[Callable[[web.Request, web.StreamResponse], None]] = (),
    ) -> None:
        self.headers = tuple(security_headers(frame_ancestors).items())
        self.also = tuple(also)

    async def add(self, request: web.Request, response: web.StreamResponse) -> None:
        for add in self.also:
            add(request, response)
        headers = response.headers
        for name, value in self.headers:
            headers.setdefault(name, value)


def install(
    app: web.Application,
    frame_ancestors: Sequence[str] = (),
    also: Sequence[Callable[[web.Request, web.StreamResponse], None]] = (),
) -> None:
    app.on_response_prepare.append(AnswerHeaders(frame_ancestors, also).add)
