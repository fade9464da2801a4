"""A second origin for the browser tests: a real HTTP server on ``localhost`` (the service listens on
127.0.0.1, so the two are different sites, not only different ports) serving a sample dashboard that embeds
``<snapshot-bar>`` from the service, under a strict Content-Security-Policy of its own."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DASHBOARD = Path(__file__).parent / "dashboard"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}


@dataclass
class HostSite:
    origin: str
    """``http://localhost:<port>``: what the service's ``--allow-origin`` must name."""
    server: str = ""
    bars: str = ""

    @property
    def url(self) -> str:
        return self.origin + "/"

    def embed(self, server: str, bars: str) -> HostSite:
        """Serve the dashboard with ``bars`` (markup; ``{server}`` is replaced) embedding from ``server``."""
        self.server, self.bars = server, bars.format(server=server)
        return self


def dashboard_html(server: str, bars: str) -> str:
    return (DASHBOARD / "index.html").read_text().replace("{{SERVER}}", server).replace("{{BARS}}", bars)


def host_policy(server: str) -> str:
    """The host page's own CSP: scripts from itself and the service, streams and requests to the service
    only, no inline script or style: the bar must live with that."""
    return (
        f"default-src 'self'; script-src 'self' {server}; connect-src {server}; style-src 'self'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'"
    )


@contextlib.contextmanager
def host_site() -> Iterator[HostSite]:
    """A host site on a free port; what it embeds is set with :meth:`HostSite.embed` (the service must know
    the site's origin for ``--allow-origin`` before the site knows the service's address)."""
    site = HostSite("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                body, kind = dashboard_html(site.server, site.bars).encode(), TYPES[".html"]
            else:
                file = DASHBOARD / path.lstrip("/")
                if path.count("/") != 1 or not file.is_file():
                    self.send_error(404)
                    return
                body, kind = file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", host_policy(site.server))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server_ = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server_.serve_forever, daemon=True)
    thread.start()
    try:
        site.origin = f"http://localhost:{server_.server_address[1]}"
        yield site
    finally:
        server_.shutdown()
        server_.server_close()
        thread.join(timeout=5)
