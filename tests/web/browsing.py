"""What every browser test shares: Debian's Chromium under Playwright (``browser``), a fresh context per page
(``open_page``), a page's script and console errors, a gate a job waits at (``gate``), and the layout measure
that says what overlaps or leaves
the screen in every ``<snapshot-bar>`` of a page (inside its shadow root).

Needs ``/usr/bin/chromium``: without it the browser tests skip, except under ``CI=true``, where they fail.
The fixtures are registered by tests/web/conftest.py."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000
VIEWPORT: ViewportSize = {"width": 1200, "height": 500}
WIDTHS = (1280, 800, 390)
IDLE_60 = re.compile(r"^Next snapshot in (59|60) minutes$")


def unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API runs an event loop of its own in this thread while it
    lives, which the asyncio tests of other modules could not start theirs beside."""
    if sync_playwright is None:
        unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page and every script error and console error it produced."""

    page: Page
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def assert_no_page_errors(self) -> None:
        assert self.page_errors == [], self.page_errors

    def assert_clean(self) -> None:
        self.assert_no_page_errors()
        assert self.console_errors == [], self.console_errors


OpenPage = Callable[..., Watched]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open a URL in a fresh browser context (optionally with an init script); closed at the end."""
    contexts = []

    def open_(
        url: str,
        *,
        init_script: str | None = None,
        before: Callable[[Page], None] | None = None,
        viewport: ViewportSize = VIEWPORT,
    ) -> Watched:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        context.set_default_timeout(WAIT_MS)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        watched = Watched(page)
        page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
        page.on("console", lambda msg: watched.console_errors.append(msg.text) if msg.type == "error" else None)
        if before is not None:
            before(page)
        page.goto(url)
        return watched

    yield open_
    for context in contexts:
        context.close()


@dataclass
class Gate:
    """A FIFO the gated job reads a line from to go on. The test holds it open for reading and writing, so the
    job's ``open`` never blocks and its ``readline`` waits exactly until :meth:`release`."""

    path: Path
    fd: int

    def release(self) -> None:
        os.write(self.fd, b"go\n")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    path = tmp_path / "gate.fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR)
    yield Gate(path, fd)
    os.close(fd)  # a job still waiting reads end-of-file and goes on


def expect_idle(page: Page, text: str | re.Pattern[str] = IDLE_60, timeout: int = 15_000) -> None:
    """The page's (first) bar is connected and idle, and says ``text``."""
    expect(page.locator("snapshot-bar").first).to_have_attribute("state", "idle", timeout=timeout)
    expect(page.locator("#snapshot-status").first).to_have_text(text, timeout=timeout)


MEASURE_LAYOUT = """() => {
    const width = window.innerWidth;
    const problems = [];
    const scrollWidth = document.documentElement.scrollWidth;
    if (scrollWidth > width) problems.push(`the page scrolls sideways: scrollWidth ${scrollWidth} > ${width}`);
    const selector = '#snapshot-job, #snapshot-status, #snapshot-progress, #snapshot-percent, #snapshot-step,'
        + ' #snapshot-detail, #snapshot-eta,'
        + ' .chip, #snapshot-checks, #snapshot-last, #run-now-message, label, input, button';
    const pieces = [...document.querySelectorAll('snapshot-bar')]
        .flatMap(bar => [...bar.shadowRoot.querySelectorAll(selector)])
        .map(el => ({el, box: el.getBoundingClientRect()}))
        .filter(p => p.el.checkVisibility() && p.box.width > 0 && p.box.height > 0);
    const name = el => '#' + (el.id || el.closest('[id]').id + ' ' + el.tagName.toLowerCase());
    for (const {el, box} of pieces) {
        if (box.left < -0.5 || box.right > width + 0.5) {
            problems.push(`${name(el)} is outside the viewport: ${Math.round(box.left)}..${Math.round(box.right)}`);
        }
        // Text wider than its own box spills over its neighbours even when the boxes do not overlap.
        if (el.tagName !== 'INPUT' && getComputedStyle(el).overflowX === 'visible'
            && el.scrollWidth > el.clientWidth + 1) {
            problems.push(`${name(el)}'s text runs out of its box: ${el.scrollWidth} > ${el.clientWidth}`);
        }
        // The step and its detail are never cut to a few letters: each is at least 10em wide (or the whole
        // bar), and when its lines are clamped its whole text is its title (one hover away).
        if (el.id === 'snapshot-step' || el.id === 'snapshot-detail') {
            const em = parseFloat(getComputedStyle(el).fontSize);
            const bar = el.closest('.bar').getBoundingClientRect();
            if (box.width < Math.min(10 * em, bar.width - 40)) {
                problems.push(`${name(el)} is squeezed to ${Math.round(box.width)} px`);
            }
            if (el.scrollHeight > el.clientHeight + 1 && el.title !== el.textContent) {
                problems.push(`${name(el)} is cut and its title is not its whole text`);
            }
        }
    }
    for (let i = 0; i < pieces.length; i++) {
        for (let j = i + 1; j < pieces.length; j++) {
            const a = pieces[i], b = pieces[j];
            if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
            const x = Math.min(a.box.right, b.box.right) - Math.max(a.box.left, b.box.left);
            const y = Math.min(a.box.bottom, b.box.bottom) - Math.max(a.box.top, b.box.top);
            if (x > 0.5 && y > 0.5) {
                problems.push(`${name(a.el)} and ${name(b.el)} overlap by ${Math.round(x)}x${Math.round(y)} px`);
            }
        }
    }
    return problems;
}"""


def layout_problems(page: Page, state: str, shots_prefix: str = "") -> list[str]:
    """What does not fit in ``state`` at each of WIDTHS (the page is left at the widest). With
    ``SNAPSHOT_LAYOUT_SHOTS=<folder>``, a screenshot of every state and width."""
    problems = []
    shots = os.environ.get("SNAPSHOT_LAYOUT_SHOTS")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        problems += [f"{state} at {width} px: {problem}" for problem in page.evaluate(MEASURE_LAYOUT)]
        if shots:
            name = shots_prefix + re.sub(r"[^a-z]+", "-", state)
            page.screenshot(path=Path(shots) / f"{name}-{width}.png")
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    return problems
