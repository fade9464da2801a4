"""The one shape of every error answer: JSON ``{"success": false, "message": ...}`` with its status and headers.

Every refusal goes through :func:`json_error`: the guard and the stream rooms return it; a handler raises
:class:`ApiError`, and the outermost middleware (:func:`json_errors`, or the guard's, which does the same itself)
answers it, and the errors aiohttp raises itself (404, 405, 413, ...), with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
"""Headers of aiohttp's own errors that the JSON answer keeps: they tell a client what to do next."""


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The one shape of every error answer."""
    return web.json_response({"success": False, "message": message}, status=status, headers=headers)


class ApiError(Exception):
    """A refusal raised by a handler (or anything it calls): answered with :func:`json_error`."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_error(self.status, self.message, self.headers or None)


def retry_after(seconds: int | None) -> dict[str, str]:
    """The ``Retry-After`` header for ``seconds`` (none for ``None``)."""
    return {} if seconds is None else {"Retry-After": str(seconds)}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, web.HTTPException) as exc:
        return error_answer(request, exc)


def error_answer(request: web.Request, exc: ApiError | web.HTTPException) -> web.Response:
    """The JSON answer to ``exc``, raised while ``request`` was answered (a redirect, below 400, is raised
    again): what :func:`json_errors` does, for a middleware that does it itself (orchestrator/http/guard.py)."""
    if isinstance(exc, ApiError):
        return exc.response()
    if exc.status < 400:
        raise exc
    headers = {name: exc.headers[name] for name in KEPT_HEADERS if name in exc.headers}
    return json_error(exc.status, _message(request, exc), headers)


def _message(request: web.Request, exc: web.HTTPException) -> str:
    path = request.path if len(request.path) <= 200 else request.path[:200] + "…"
    if isinstance(exc, web.HTTPNotFound):
        return f"Not found: {path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return f"{request.method} is not allowed on {path}; allowed: {', '.join(sorted(exc.allowed_methods))}"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return f"Request body too large: at most {request.client_max_size} bytes"
    return exc.reason
