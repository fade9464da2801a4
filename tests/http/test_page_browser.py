"""The page's modules and the stream tickets in real Chromium.

- Element modules reached by their plain URLs run from one versioned tree: a module they share loads once.
- A page on another origin, against a real service with ``--token --token-for-reads``: it loads the page's
  static files (CORS for any origin), asks for a stream ticket with its bearer token (a preflighted POST,
  allowed by ``--allow-origin``), opens the event stream with it (an ``EventSource``, which sends no header),
  and is refused a second stream with the same ticket. A service that does not list the origin refuses the
  ticket's preflight, so the page gets nothing.

The other origin is a second HTTP server on another port of 127.0.0.1 (a port is part of an origin). Needs
Debian's ``/usr/bin/chromium``: without it these skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from orchestrator.http.page import PAGE_VERSION, add_page
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


SHARED = "globalThis.sharedLoads = (globalThis.sharedLoads || 0) + 1;\nexport const shared = (x) => x;\n"
MODULES = {
    "index.html": '<!doctype html><title>page</title><script type="module" src="/page.js"></script>',
    "page.js": 'import { one } from "./snapshot-bar.js";\nimport { two } from "./snapshot-log.js";\n'
    "document.title = `${one} ${two} ${globalThis.sharedLoads}`;\n",
    "snapshot-bar.js": 'import { shared } from "./lib/shared.js";\nexport const one = shared("one");\n',
    "snapshot-log.js": 'import { shared } from "./lib/shared.js";\nexport const two = shared("two");\n',
    "lib/shared.js": SHARED,
}


@pytest.fixture
def page_only(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The page's routes alone (no service) over HTTP, from a folder of made-up modules: its URL and version.
    Served from a thread with its own event loop (Playwright's sync API holds the test thread's)."""
    root = tmp_path / "web"
    for name, text in MODULES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    app = web.Application()
    add_page(app, root)
    port = free_port()
    ready, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="page", daemon=True)
    thread.start()
    assert ready.wait(timeout=10), "the page server did not start"
    yield f"http://127.0.0.1:{port}", app[PAGE_VERSION]
    stop.set()
    thread.join(timeout=10)


@pytest.mark.browser
def test_elements_reached_by_their_plain_urls_share_their_modules(chromium: Any, page_only: tuple[str, str]) -> None:
    url, version = page_only
    page = chromium.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url.removeprefix(url)))
    try:
        page.goto(url + "/")
        page.wait_for_function("document.title !== 'page'", timeout=10_000)
        assert page.title() == "one two 1"  # named exports through the entries; the shared module ran once
        assert [path for path in requested if path.endswith("shared.js")] == [f"/v/{version}/lib/shared.js"]
    finally:
        page.close()


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
