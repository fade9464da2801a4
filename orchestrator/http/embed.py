"""Routes for what other pages show of the job: stream tickets for a page on another origin, and the status badge.

- ``POST /api/stream-ticket``: a ticket that opens one protected read within a minute (``?ticket=<value>``,
  for an ``EventSource``, which sends no ``Authorization`` header). A POST, so the guard has checked the
  token and the origin (``--allow-origin``) before it is issued; the ticket itself is orchestrator/http/tickets.py.
- ``GET /badge/{job}.svg``: any job's badge (orchestrator/http/badge.py), a read guarded like the status
  document; a job the service does not have is a 404.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.core.events import iso
from orchestrator.http.badge import badge_svg
from orchestrator.http.guard import GUARD
from orchestrator.http.jobroutes import job_of
from orchestrator.http.ports import SERVED

BADGE_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""The badge draws with attributes only: no style, script, font or image of its own to allow."""


async def stream_ticket(request: web.Request) -> web.Response:
    """``{"ticket", "expiresAt", "expiresInSeconds"}``; all ``null`` on a service without a token (its reads
    need none)."""
    ticket = request.app[GUARD].tokens.stream_ticket(request)
    body: dict[str, str | int | None]
    if ticket is None:
        body = {"ticket": None, "expiresAt": None, "expiresInSeconds": None}
    else:
        seconds = max(0, round((ticket.expires - request.app[SERVED].clock.now()).total_seconds()))
        body = {"ticket": ticket.value, "expiresAt": iso(ticket.expires), "expiresInSeconds": seconds}
    # The value opens a read: no cache, shared or private, may keep it.
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def badge(request: web.Request) -> web.Response:
    job = job_of(request)
    svg = badge_svg(job.name, job.view.status(), job.view.now())
    return web.Response(
        text=svg,
        content_type="image/svg+xml",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": BADGE_POLICY,
            # An <img> on a page that isolates itself (Cross-Origin-Embedder-Policy) needs this to show it.
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )
