"""The client commands' HTTP: urllib, but a redirect is never followed.

The service never redirects, so a redirect means a wrong ``--url`` or something in the way (a proxy, a
captive portal, a server that is not ours). Following it would be worse than failing: urllib sends every
header of the request on to the redirect's target, ``Authorization: Bearer <token>`` included, whatever
its host, and turns a ``POST`` (a cancel, a trigger) into a ``GET``. So the redirect ends the request as
:class:`Redirected`, with nothing sent to the place it names.
"""

from __future__ import annotations

import email.message
import urllib.error
import urllib.request
from typing import IO, Any

from orchestrator.core.printable import printable

LOCATION_SHOWN = 200
"""Characters of a redirect's ``Location`` quoted in the error (it comes from whoever answered)."""


class Redirected(urllib.error.HTTPError):
    """An answer that redirected (3xx): not followed."""

    def __init__(self, url: str, code: int, headers: email.message.Message, fp: IO[bytes] | None) -> None:
        location = printable(str(headers.get("Location") or "?"))
        if len(location) > LOCATION_SHOWN:
            location = location[:LOCATION_SHOWN] + "…"
        self.location = location
        message = (
            f"{url} answered {code}, a redirect to {location}, which was not followed (the token is never sent "
            "elsewhere): the service never redirects, so --url (SNAPSHOT_URL) is wrong or a proxy is in the way"
        )
        super().__init__(url, code, message, headers, fp)

    def __str__(self) -> str:
        return str(self.msg)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # urllib calls this for 301, 302, 303, 307 and 308 alike, with its own positional signature.
    def redirect_request(  # noqa: PLR0917
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: email.message.Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        raise Redirected(req.full_url, code, headers, fp)


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def open_url(request: urllib.request.Request, timeout: float) -> Any:
    """``urllib.request.urlopen`` without following redirects (:class:`Redirected` instead)."""
    return _OPENER.open(request, timeout=timeout)
