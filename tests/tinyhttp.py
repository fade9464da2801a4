"""A tiny real HTTP server in a thread, for the client commands' edges: it answers as told and records what
it received (a redirect's target must receive nothing)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str, str], tuple[int, dict[str, str], bytes]]
"""``(method, path)`` to ``(status, headers, body)``."""


@dataclass(frozen=True)
class Seen:
    """One request a tiny server received."""

    method: str
    path: str
    authorization: str | None
    body: bytes = b""


@dataclass
class TinyServer:
    """A real HTTP server on a loopback port, in a thread: what it received, and how it answers."""

    answer: Answer
    seen: list[Seen] = field(default_factory=list)
    port: int = 0


@contextlib.contextmanager
def tiny_server(answer: Answer) -> Iterator[TinyServer]:
    server = TinyServer(answer)

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.seen.append(Seen(self.command, self.path, self.headers.get("Authorization"), body))
            status, headers, body = server.answer(self.command, self.path)
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = handle_one

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="tiny-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
