"""A page on another origin, in real Chromium, against a real service with ``--token --token-for-reads``: it
loads the page's static files (CORS for any origin), asks for a stream ticket with its bearer token (a
preflighted POST, allowed by ``--allow-origin``), opens the event stream with it (an ``EventSource``, which
sends no header), and is refused a second stream with the same ticket. A service that does not list the origin
refuses the ticket's preflight, so the page gets nothing.

The other origin is a second HTTP server on another port of 127.0.0.1 (a port is part of an origin). Needs
Debian's ``/usr/bin/chromium``: without it this skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServiceProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "cross-origin-token-0123"
HOST_PAGE = """<!doctype html><meta charset="utf-8"><title>dashboard</title>
<script>
async function visit(server, token) {
  const out = {};
  const css = await fetch(server + "/style.css", { mode: "cors" });
  out.static = [css.status, css.headers.get("cache-control")];
  let ticket;
  try {
    const headers = { Authorization: "Bearer " + token };
    const answer = await fetch(server + "/api/stream-ticket", { method: "POST", headers });
    ticket = await answer.json();
  } catch (e) {
    out.ticket = "refused";
    return out;
  }
  out.ticket = Object.keys(ticket).sort();
  const open = () => new Promise((resolve) => {
    const es = new EventSource(server + "/api/snapshot/events?ticket=" + encodeURIComponent(ticket.ticket));
    es.addEventListener("status", (event) => { es.close(); resolve(typeof JSON.parse(event.data).running); });
    es.onerror = () => { es.close(); resolve("refused"); };
  });
  out.first = await open();
  out.again = await open();
  return out;
}
</script>"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        _unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    """Another origin: the host page served by a plain HTTP server on its own port."""
    root = tmp_path / "dashboard"
    root.mkdir()
    (root / "index.html").write_text(HOST_PAGE)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.process
@pytest.mark.browser
def test_a_page_on_an_allowed_origin_streams_with_a_ticket(
    chromium: Any, dashboard: str, service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    protected = ("--token", TOKEN, "--token-for-reads", "--interval", "600")
    allowing = service_factory(*protected, "--allow-origin", dashboard, root=tmp_path / "allowing")
    other = service_factory(*protected, root=tmp_path / "other")
    page = chromium.new_page()
    try:
        page.goto(dashboard + "/index.html")
        allowed = page.evaluate("([server, token]) => visit(server, token)", [allowing.url, TOKEN])
        assert allowed == {
            "static": [200, "no-cache"],
            "ticket": ["expiresAt", "expiresInSeconds", "ticket"],
            "first": "boolean",  # a status document came
            "again": "refused",  # single use: a second stream needs a new ticket
        }
        refused = page.evaluate("([server, token]) => visit(server, token)", [other.url, TOKEN])
        assert refused == {"static": [200, "no-cache"], "ticket": "refused"}
    finally:
        page.close()
