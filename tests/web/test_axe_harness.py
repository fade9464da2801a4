"""The axe-core harness (tests/web/axe.py) against tiny pages with known faults, served with the
service's script policy (``script-src 'self'``): it must find a serious violation where there is one, in the
page and inside an open shadow root, and none on the same page fixed.

Needs Debian's ``/usr/bin/chromium`` and axe-core (scripts/fetch-axe): without them these tests skip, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NoReturn

import pytest

from tests.web.axe import run_axe

try:
    from playwright.sync_api import Browser, Error, Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CSP = "script-src 'self'"
PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="

BROKEN = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Broken</h1>
<p id="faults"><img src="{PIXEL}"> <button type="button"></button></p>
<p id="fine"><button type="button">Named</button></p>
</main></body></html>"""

FIXED = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fixed</title></head>
<body><main><h1>Fixed</h1>
<p id="faults"><img src="{PIXEL}" alt="A dot"> <button type="button">Run now</button></p>
<p id="fine"><button type="button">Named</button></p>
</main></body></html>"""

SHADOW = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shadow</title>
<script type="module" src="/element.js"></script></head>
<body><main><h1>Shadow</h1><nameless-button></nameless-button></main></body></html>"""

ELEMENT_JS = """customElements.define("nameless-button", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const button = document.createElement("button");
    button.id = "inner";
    this.attachShadow({ mode: "open" }).append(button);
    document.body.dataset.ready = "yes";
  }
});"""

FILES = {
    "/broken": ("text/html", BROKEN),
    "/fixed": ("text/html", FIXED),
    "/shadow": ("text/html", SHADOW),
    "/element.js": ("text/javascript", ELEMENT_JS),
}


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in FILES:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        kind, text = FILES[self.path]
        body = text.encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures, not requests
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The pages above at http://127.0.0.1:PORT, with the service's script policy."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(axe_source: str) -> Iterator[Browser]:
    if sync_playwright is None:
        _unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_pages_refuse_inline_scripts(page: Page, site: str) -> None:
    """The premise: a <script> element with the source inline cannot carry axe into these pages."""
    page.goto(f"{site}/broken")
    with pytest.raises(Error, match="Content Security Policy"):
        page.add_script_tag(content="window.inline = true")
    assert page.evaluate("() => window.inline") is None


def test_axe_finds_the_serious_violations_of_a_broken_page(page: Page, site: str) -> None:
    page.goto(f"{site}/broken")
    found = {violation["id"]: violation for violation in run_axe(page)}
    assert set(found) == {"image-alt", "button-name"}
    assert found["image-alt"]["targets"] == ["img"]
    assert found["button-name"]["targets"] == ["#faults > button"]
    assert all(violation["impact"] in {"serious", "critical"} and violation["help"] for violation in found.values())


def test_axe_finds_nothing_on_the_same_page_fixed(page: Page, site: str) -> None:
    page.goto(f"{site}/fixed")
    assert run_axe(page) == []


def test_axe_checks_only_what_it_is_told_to_include(page: Page, site: str) -> None:
    page.goto(f"{site}/broken")
    assert run_axe(page, include="#fine") == []
    assert {violation["id"] for violation in run_axe(page, include=["#fine", "#faults"])} == {
        "image-alt",
        "button-name",
    }
    # A second run on the same page reuses the axe it injected.
    assert [violation["id"] for violation in run_axe(page, include="#faults > button")] == ["button-name"]


def test_axe_sees_into_open_shadow_roots(page: Page, site: str) -> None:
    page.goto(f"{site}/shadow")
    page.wait_for_selector("body[data-ready=yes]", timeout=10_000)
    [violation] = run_axe(page)
    assert violation["id"] == "button-name"
    assert violation["targets"] == ["nameless-button >> #inner"]
