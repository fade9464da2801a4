"""``<snapshot-bar>`` embedded in another origin's page: a sample dashboard served by a second real HTTP server
(tests/web/host.py) on ``localhost``, the service on 127.0.0.1, in Debian's Chromium."""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from tests.support import REPO, ServiceProcess, job_command, sample_command, start_service
from tests.web.axe import run_axe
from tests.web.browsing import WIDTHS, OpenPage, expect_idle, layout_problems
from tests.web.host import HostSite, host_site

pytestmark = pytest.mark.browser

TOKEN = "embed-test-token-0123456789"
ONE_BAR = '<snapshot-bar id="bar" server="{server}" controls="run cancel pause"></snapshot-bar>'
STEPPED_JOB = job_command(
    "import os, sys\n"
    "with open(os.environ['TEST_GATE']) as gate:\n"
    "    for step in range(1, 4):\n"
    "        print(f'PROGRESS {step * 25} Fetching GitHub PRs ({step * 5}/15 repos)', flush=True)\n"
    "        gate.readline()\n"
)
"""Reports 25, 50 and 75 %, each after a line on the gate (a fifo)."""


def _sse_clients(service: ServiceProcess) -> int:
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r"^snapshot_sse_clients (\d+(?:\.\d+)?)$", text, re.MULTILINE)
    assert match, text
    return int(float(match.group(1)))


@pytest.fixture
def site() -> Iterator[HostSite]:
    with host_site() as started:
        yield started


def _embedded(service_factory: Any, site: HostSite, *args: str, bars: str = ONE_BAR, **kwargs: Any) -> Any:
    """A service that lets ``site``'s origin in, and the site embedding it."""
    service = service_factory(*args, "--allow-origin", site.origin, **kwargs)
    site.embed(service.url, bars)
    return service


def test_the_bar_runs_a_snapshot_from_another_origin_and_tells_the_host_page(
    service_factory: Any, open_page: OpenPage, site: HostSite, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    service = _embedded(
        service_factory, site, "--command", STEPPED_JOB, "--interval", "60", env={"TEST_GATE": str(gate)}
    )
    loaded: list[tuple[str, str | None]] = []
    watched = open_page(
        site.url,
        before=lambda page: page.on(
            "response", lambda r: loaded.append((r.url, r.headers.get("cache-control"))) if "/v/" in r.url else None
        ),
    )
    page = watched.page
    # Nothing ran yet (the start-up run waits at the gate): open the gate for it first.
    with open(gate, "w") as writer:
        expect(page.locator("#snapshot-progress")).to_have_attribute("aria-valuenow", "25")
        expect(page.locator("#snapshot-progress")).to_have_attribute(
            "aria-valuetext", "25 %, Fetching GitHub PRs (5/15 repos)"
        )
        for _ in range(3):
            writer.write("go\n")
            writer.flush()
    expect_idle(page)
    expect(page.locator("#snapshot-last")).to_contain_text("Completed")
    assert any(url.endswith("/snapshot-bar.js") for url, _ in loaded), loaded
    assert all("immutable" in (cache or "") for _, cache in loaded), loaded

    page.locator("#run-now").click()
    with open(gate, "w") as writer:
        expect(page.locator("snapshot-bar")).to_have_attribute("state", "running")
        expect(page.locator("#snapshot-step")).to_have_text("Fetching GitHub PRs (5/15 repos)")
        writer.write("go\n")
        writer.flush()
        expect(page.locator("#snapshot-progress")).to_have_attribute("aria-valuenow", "50")
        expect(page.locator("#snapshot-step")).to_have_text("Fetching GitHub PRs (10/15 repos)")
        if os.environ.get("SNAPSHOT_SCREENSHOT") == "1":
            _screenshots(page)
        writer.write("go\ngo\n")
        writer.flush()
    expect_idle(page)
    last = service.get_json("/api/snapshot/status")["lastRun"]
    assert last["trigger"] == "http" and last["status"] == "completed"
    expect(page.locator("#data-from")).to_have_text(f"Data from snapshot {last['runId']} (completed)")
    events = page.evaluate("window.__events")
    started = [e for e in events if e["type"] == "snapshot-run-started"]
    finished = [e for e in events if e["type"] == "snapshot-run-finished"]
    assert started[-1]["runId"] == last["runId"]
    assert finished[-1] == {"type": "snapshot-run-finished", "runId": last["runId"], "status": "completed"}
    assert sum(e["type"] == "snapshot-status" for e in events) >= 3
    watched.assert_clean()


def test_two_bars_and_a_history_on_one_page_share_one_stream(
    service_factory: Any, open_page: OpenPage, site: HostSite
) -> None:
    bars = (
        '<snapshot-bar id="one" server="{server}"></snapshot-bar>'
        '<snapshot-bar id="two" server="{server}" compact></snapshot-bar>'
    )
    service = _embedded(service_factory, site, "--command", sample_command(0.2), "--interval", "60", bars=bars)
    watched = open_page(site.url)
    page = watched.page
    for bar in ("#one", "#two"):
        expect(page.locator(bar)).to_have_attribute("state", "idle", timeout=15_000)
    # Both bars show the stream's news: had each opened its own, both would be open now.
    assert _sse_clients(service) == 1
    # Without `controls`, a bar offers Run Now only.
    expect(page.locator("#one >> #run-now")).to_be_visible()
    expect(page.locator("#one >> #pause-run")).to_be_hidden()
    page.evaluate("() => document.querySelectorAll('snapshot-bar').forEach(bar => bar.remove())")
    _wait_for(lambda: _sse_clients(service) == 0, "the stream closed with its last element")
    watched.assert_clean()


FOCUSED_NAME = """() => {
    const inner = document.activeElement?.shadowRoot?.activeElement;
    return inner ? (inner.getAttribute('aria-label') || inner.textContent.trim()) : null;
}"""


def _screenshots(page: Page) -> None:
    """docs/embed-desktop.png and docs/embed-phone.png: the bar in the sample dashboard, running."""
    for name, width, height in (("desktop", 1280, 420), ("phone", 390, 760)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(REPO / "docs" / f"embed-{name}.png"), animations="disabled")
    page.set_viewport_size({"width": 1280, "height": 900})


def _wait_for(condition: Any, what: str, timeout: float = 10) -> None:
    """Poll the service (a separate process: no event to wait on) until ``condition()``, at most ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_bar_goes_offline_and_comes_back_with_the_service(
    service_factory: Any, open_page: OpenPage, site: HostSite, tmp_path: Path
) -> None:
    args = ("--command", sample_command(0.2), "--interval", "60", "--allow-origin", site.origin)
    root = tmp_path / "svc"
    service: ServiceProcess = service_factory(*args, root=root)
    site.embed(service.url, ONE_BAR)
    watched = open_page(site.url)
    page = watched.page
    expect_idle(page)
    service.stop()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "offline", timeout=5_000)
    expect(page.locator("#snapshot-status")).to_have_text("Snapshot service unreachable — reconnecting…")
    expect(page.locator("#run-now")).to_be_disabled()
    again = start_service(root, *args, port=service.port)
    try:
        again.wait_ready()
        expect_idle(page, timeout=20_000)
        expect(page.locator("#run-now")).to_be_enabled()
    finally:
        again.stop()
    watched.assert_no_page_errors()  # refused connections are console errors; scripts must not throw


def _record_requests(page: Page, service: ServiceProcess, seen: list[Request]) -> None:
    """Add every request ``page`` sends to ``service`` to ``seen``."""
    page.on("request", lambda request: seen.append(request) if request.url.startswith(service.url) else None)


def test_a_protected_service_asks_for_the_token_and_streams_with_a_ticket(
    service_factory: Any, open_page: OpenPage, site: HostSite, tmp_path: Path
) -> None:
    env = {"SNAPSHOT_TOKEN": TOKEN, "SNAPSHOT_TOKEN_FOR_READS": "true"}
    service = _embedded(service_factory, site, "--command", sample_command(0.2), "--interval", "60", env=env)
    requests: list[Request] = []
    watched = open_page(site.url, before=lambda page: _record_requests(page, service, requests))
    page = watched.page
    expect(page.locator("#snapshot-status")).to_have_text("Enter the service's token to see snapshots")
    expect(page.locator("#token-form")).to_be_visible()
    page.locator("#token-input").fill(TOKEN)
    page.locator("#token-save").click()
    expect_idle(page)
    page.locator("#run-now").click()
    expect(page.locator("#snapshot-last")).to_contain_text("manual", timeout=15_000)

    streams = [r for r in requests if urlsplit(r.url).path == "/api/events"]  # the stream of every job
    assert streams and all("ticket=" in r.url for r in streams[-1:]), [r.url for r in streams]
    for request in requests:
        assert TOKEN not in request.url
        assert "ticket=" not in (request.headers.get("referer") or "")
    tickets = [re.search(r"ticket=([^&]+)", r.url) for r in streams]
    logs = service.logs()
    assert TOKEN not in logs
    for ticket in filter(None, tickets):
        assert ticket.group(1) not in logs
    watched.assert_no_page_errors()


def test_the_host_page_can_hand_the_bar_its_token(service_factory: Any, open_page: OpenPage, site: HostSite) -> None:
    env = {"SNAPSHOT_TOKEN": TOKEN, "SNAPSHOT_TOKEN_FOR_READS": "true"}
    _embedded(service_factory, site, "--command", sample_command(0.2), "--interval", "60", env=env)
    watched = open_page(site.url + "#token=" + TOKEN)
    page = watched.page
    expect_idle(page)
    expect(page.locator("#token-form")).to_be_hidden()
    assert page.evaluate("() => Object.keys(localStorage)") == []  # set by the host: kept in memory only
    watched.assert_clean()


def test_an_origin_the_service_does_not_allow_is_told_so(
    service_factory: Any, open_page: OpenPage, site: HostSite
) -> None:
    service = service_factory("--command", sample_command(0.2), "--interval", "60")
    site.embed(service.url, ONE_BAR)
    watched = open_page(site.url)
    page = watched.page
    expect(page.locator("#snapshot-status")).to_have_text(
        "This page's origin may not read the snapshot service (see --allow-origin)"
    )
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "offline")
    watched.assert_no_page_errors()


def test_the_embedded_bar_fits_every_width(service_factory: Any, open_page: OpenPage, site: HostSite) -> None:
    bars = ONE_BAR + '<snapshot-bar server="{server}" compact></snapshot-bar>'
    _embedded(service_factory, site, "--command", sample_command(0.2), "--interval", "60", bars=bars)
    watched = open_page(site.url)
    page = watched.page
    expect_idle(page)
    problems = layout_problems(page, "embedded, idle", shots_prefix="embed-")
    assert problems == [], "\n".join(problems)
    assert len(WIDTHS) == 3
    watched.assert_clean()


def test_the_bar_has_no_serious_accessibility_violations(
    service_factory: Any, open_page: OpenPage, site: HostSite, axe_source: str, tmp_path: Path
) -> None:
    """axe-core over the host page with the bar idle, running (with its step and ETA) and asking for a
    token; and every control of the bar reached by the keyboard with a name."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    env = {"TEST_GATE": str(gate), "SNAPSHOT_TOKEN": TOKEN}
    _embedded(service_factory, site, "--command", STEPPED_JOB, "--interval", "60", env=env)
    watched = open_page(site.url)
    page = watched.page
    with open(gate, "w") as writer:
        expect(page.locator("#snapshot-progress")).to_have_attribute("aria-valuenow", "25")
        assert run_axe(page) == [], "running"
        writer.write("go\ngo\ngo\n")
        writer.flush()
    expect_idle(page)
    assert run_axe(page) == [], "idle"
    page.emulate_media(color_scheme="dark")  # the bar follows the reader's preference
    assert run_axe(page, include="snapshot-bar") == [], "idle, dark"
    page.emulate_media(color_scheme="light")
    names = []
    for _ in range(2):  # Pause and Run Now: reached by Tab from the page's start, in order, each named
        page.keyboard.press("Tab")
        names.append(page.evaluate(FOCUSED_NAME))
    assert names == ["Pause", "Run Now"], names
    page.locator("#run-now").click()  # refused without the token: the bar asks for it
    expect(page.locator("#token-form")).to_be_visible()
    assert run_axe(page) == [], "token form"
    watched.assert_no_page_errors()


def test_a_job_the_service_does_not_have_is_named(service_factory: Any, open_page: OpenPage, site: HostSite) -> None:
    bars = '<snapshot-bar server="{server}" job="nightly"></snapshot-bar>'
    _embedded(service_factory, site, "--command", sample_command(0.2), "--interval", "60", bars=bars)
    watched = open_page(site.url)
    expect(watched.page.locator("#snapshot-status")).to_have_text("The snapshot service has no job named nightly")
    watched.assert_no_page_errors()
