"""The status page in a real headless Chromium, against a real service process.

Needs Debian's ``/usr/bin/chromium``: without it these tests skip, except under ``CI=true``, where they fail.
``SNAPSHOT_SCREENSHOT=1`` also saves ``docs/screenshot.png`` of the page while a snapshot runs, and
``SNAPSHOT_LAYOUT_SHOTS=<folder>`` a screenshot of every state and width the layout test measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import queue
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.sync_api import Page, Request, Route, expect

from tests.support import REPO, ServiceProcess, job_command, sample_command, start_service
from tests.web.axe import run_axe
from tests.web.browsing import IDLE_60, WIDTHS, Gate, OpenPage, Watched, expect_idle, layout_problems

SCREENSHOT = REPO / "docs" / "screenshot.png"
TOKEN = "browser-test-token-0123"


def history_row(page: Page, index: int) -> Any:
    """Row ``index`` of the history panel, newest first."""
    return page.locator("#history-rows tr").nth(index)


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.browser
def test_page_shows_countdown_when_idle(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(0.5), "--interval", "60")
    watched = open_page(service.url + "/")
    page = watched.page

    expect_idle(page)  # after the start-up run
    expect(page.locator("#snapshot-last")).to_contain_text("Completed")
    expect(page.locator("#snapshot-last")).to_contain_text("start-up")
    expect(page.locator("#snapshot-last")).to_contain_text("just now")
    expect(page.locator("#snapshot-connection")).to_have_attribute("data-connected", "true")
    expect(page.locator("#run-now")).to_be_enabled()
    expect(page.locator("#snapshot-progress")).to_be_hidden()
    expect(page.locator("#snapshot-status")).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("heading", name="Your app here")).to_be_visible()
    watched.assert_clean()


@pytest.mark.browser
def test_countdown_ticks_without_server_events(service_factory: Any, open_page: OpenPage) -> None:
    # 66 s between runs: right after the start-up run "1 minute" is left, a few seconds later less than one.
    service = service_factory("--command", sample_command(0.2), "--interval", "1.1")
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page, "Next snapshot in 1 minute")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    expect(page.locator("#snapshot-status")).to_have_text("Next snapshot in less than a minute", timeout=12_000)
    # The countdown moved by itself: no polling. (The panels' one refetch each for the start-up run's end — the
    # history, the run's steps, the step figures — may trail the idle text on a busy machine; that is news,
    # not polling.)
    news = [url for url in requests if url.endswith(("/api/snapshot/runs?limit=20", "/steps"))]
    assert len(set(news)) == len(news) and len(requests) == len(news), requests
    watched.assert_clean()


@pytest.mark.browser
def test_run_now_shows_progress_then_the_outcome(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(3), "--interval", "60")
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)  # the start-up run is over
    expect(page.locator("#snapshot-last")).to_contain_text("start-up")

    # Record every progress value and state the page shows from here on.
    page.evaluate(
        """() => {
            window.__seen = [];
            const host = document.querySelector('snapshot-bar');
            const bar = host.shadowRoot.getElementById('snapshot-progress');
            const note = () => window.__seen.push({state: host.getAttribute('state'),
                                                   value: Number(bar.getAttribute('aria-valuenow'))});
            new MutationObserver(note).observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
        }"""
    )
    button = page.locator("#run-now")
    button.click()

    expect(page.locator("snapshot-bar")).to_have_attribute("state", "running", timeout=5_000)
    expect(page.locator("#snapshot-status")).to_have_text("Snapshot: Running...")
    expect(button).to_be_disabled()
    progress = page.get_by_role("progressbar", name="Snapshot progress")
    expect(progress).to_be_visible()
    expect(page.locator("#snapshot-step")).to_contain_text("Fetching GitHub PRs")
    page.wait_for_function(
        "() => { const host = document.querySelector('snapshot-bar');"
        " return host.getAttribute('state') === 'running'"
        " && Number(host.shadowRoot.getElementById('snapshot-progress').getAttribute('aria-valuenow')) >= 20; }",
        timeout=5_000,
    )
    expect(button).to_be_disabled()
    if os.environ.get("SNAPSHOT_SCREENSHOT") == "1":
        # The whole page: the bar, the history with the running run on top, and that run's log, live.
        page.set_viewport_size({"width": 1200, "height": 900})
        history_row(page, 0).locator("button").click()
        expect(page.locator("#log-lines .log-line").last).to_contain_text("PROGRESS")
        page.locator("#log-lines").blur()
        page.evaluate("window.scrollTo(0, 0)")  # the log scrolled itself into view: the sticky bar goes back on top
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), animations="disabled", full_page=True)

    expect(page.locator("snapshot-bar")).to_have_attribute("state", "idle", timeout=10_000)
    last = page.locator("#snapshot-last")
    expect(last).to_contain_text("Completed")
    expect(last).to_contain_text("manual")
    expect(last).to_have_attribute("data-outcome", "completed")
    expect(button).to_be_enabled()
    expect(page.locator("#run-now-message")).to_have_text("")

    seen = page.evaluate("window.__seen")
    running_values = {s["value"] for s in seen if s["state"] == "running" and s["value"] > 0}
    assert len(running_values) >= 2, seen
    watched.assert_clean()


@pytest.mark.browser
def test_offline_then_back_when_the_service_returns(service_factory: Any, open_page: OpenPage, tmp_path: Path) -> None:
    args = ("--command", sample_command(0.3), "--interval", "60")
    root = tmp_path / "svc"
    service: ServiceProcess = service_factory(*args, root=root)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)

    service.stop()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "offline", timeout=5_000)
    expect(page.locator("#snapshot-status")).to_have_text("Snapshot service unreachable — reconnecting…")
    expect(page.locator("#snapshot-connection")).to_have_attribute("data-connected", "false")
    expect(page.locator("#run-now")).to_be_disabled()

    again = start_service(root, *args, port=service.port)
    try:
        again.wait_ready()
        expect_idle(page, timeout=10_000)  # EventSource reconnects by itself (retry: 2000)
        expect(page.locator("#snapshot-last")).to_contain_text("start-up")  # the state survived
        expect(page.locator("#run-now")).to_be_enabled()
        expect(history_row(page, 0)).to_contain_text("start-up")  # fetched again on reconnecting
    finally:
        again.stop()
    # Connection-refused errors of the reconnect attempts are logged to the console; scripts must not throw.
    watched.assert_no_page_errors()


@pytest.mark.browser
def test_run_now_failure_shows_a_message(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(0.3), "--interval", "60")
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    button, message = page.locator("#run-now"), page.locator("#run-now-message")

    busy = {"success": False, "message": "service is busy"}
    page.route("**/api/snapshot/trigger", lambda route: route.fulfill(status=503, json=busy))
    button.click()
    expect(message).to_have_text("Could not start a snapshot: service is busy")
    expect(button).to_be_enabled()

    page.unroute("**/api/snapshot/trigger")
    page.route("**/api/snapshot/trigger", lambda route: route.abort())
    button.click()
    expect(message).to_have_text("Could not reach the snapshot service")
    expect(button).to_be_enabled()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "idle")
    watched.assert_no_page_errors()  # the failed requests themselves are console errors


SKEW_SCRIPT = """
(() => {
  const shift = %d;
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  const Skewed = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return args.length ? Reflect.construct(target, args, newTarget) : new target(realNow() + shift);
    },
    apply() { return new RealDate(realNow() + shift).toString(); },
  });
  RealDate.now = () => realNow() + shift;
  globalThis.Date = Skewed;
})();
"""


@pytest.mark.browser
def test_countdown_ignores_a_skewed_browser_clock(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(0.3), "--interval", "60")
    for shift in (timedelta(hours=2), -timedelta(hours=3)):
        shift_ms = int(shift.total_seconds() * 1000)
        watched = open_page(service.url + "/", init_script=SKEW_SCRIPT % shift_ms)
        page = watched.page
        skew = page.evaluate("Date.now() - (performance.timeOrigin + performance.now())")
        assert abs(skew - shift_ms) < 5_000, skew  # the page's clock really is off
        expect_idle(page)
        expect(page.locator("#snapshot-last")).to_contain_text("just now")
        watched.assert_clean()


def _status_document(server_time: datetime, next_run: datetime) -> dict[str, Any]:
    def iso(at: datetime) -> str:
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "running": False,
        "lastRunAt": iso(next_run - timedelta(minutes=60)),
        "nextRunAt": iso(next_run),
        "intervalMinutes": 60,
        "minutesUntilNextRun": 0,
        "progress": {"status": "completed", "step": "Completed", "progress": 100},
        "secondsUntilNextRun": round((next_run - server_time).total_seconds(), 1),
        "queued": False,
        "currentRun": None,
        "lastRun": None,
        "serverTime": iso(server_time),
    }


ONE_JOB = {"jobs": [], "defaultJob": "snapshot"}
"""What a faked service of one job answers to ``GET /api/jobs``: the page then opens the stream of every job
(``/api/events``), whose documents (with no ``job``) are the default job's."""

FAKE_EVENT_SOURCE = """
(() => {
  class FakeEventSource extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      window.__stream = this;
      setTimeout(() => { this.readyState = 1; this.dispatchEvent(new Event('open')); }, 0);
    }
    close() { this.readyState = 2; }
    send(data) { this.dispatchEvent(new MessageEvent('status', {data})); }
  }
  Object.assign(FakeEventSource, {CONNECTING: 0, OPEN: 1, CLOSED: 2});
  window.EventSource = FakeEventSource;
})();
"""


def _fake_stream_page(open_page: OpenPage, runs: tuple[int, dict[str, Any]] | None = None) -> Watched:
    """The real page's files at a made-up origin, with a fake event stream (``window.__stream.send``) and a
    run history that answers ``runs`` (status, body; default: 200, no runs); the service has one job
    (``ONE_JOB``), the steps of a run and the step figures are empty; every other path is a 404."""
    web = (REPO / "web").resolve()
    runs_status, runs_body = runs or (200, {"runs": [], "nextCursor": None})

    def serve(route: Route) -> None:
        path = urlsplit(route.request.url).path
        file = (web / (path.lstrip("/") or "index.html")).resolve()
        if not path.startswith("/api/") and file.is_relative_to(web) and file.is_file():
            route.fulfill(path=file, content_type="text/javascript" if file.suffix == ".js" else None)
        elif path == "/api/jobs":  # a service of one job: its stream is the one of every job, faked
            route.fulfill(json=ONE_JOB)
        elif path == "/api/snapshot/runs":
            route.fulfill(status=runs_status, json=runs_body)
        elif path.endswith("/steps"):
            route.fulfill(json={"runs": 0, "status": "running", "steps": [], "truncated": False})
        else:
            route.fulfill(status=404)

    def routes(page: Page) -> None:
        page.route("http://snapshot.test/**", serve)

    watched = open_page("http://snapshot.test/", init_script=FAKE_EVENT_SOURCE, before=routes)
    watched.page.wait_for_function("() => window.__stream && window.__stream.readyState === 1")
    return watched


@pytest.mark.browser
def test_a_garbled_event_breaks_nothing(open_page: OpenPage) -> None:
    """A document that is not JSON (a broken proxy, say) is ignored: no script error, the last state stays.
    The event stream is faked here so the test can send exactly that; the page's files are the real ones."""
    server_time = datetime.now(UTC) - timedelta(hours=3)  # the server's clock, far from the browser's
    document = _status_document(server_time, server_time + timedelta(minutes=60, seconds=30))
    watched = _fake_stream_page(open_page)
    page = watched.page
    page.evaluate("data => window.__stream.send(data)", json.dumps(document))
    expect_idle(page, "Next snapshot in 60 minutes", timeout=5_000)
    page.evaluate("data => window.__stream.send(data)", "not json {")
    expect_idle(page, "Next snapshot in 60 minutes", timeout=5_000)
    watched.assert_clean()


# ----------------------------------------------------------------------------------- token and cancel
def _post_headers(page: Page, name: str) -> list[str | None]:
    """Header ``name`` (lower case) of every change the page POSTs from now on (not the stream tickets it
    asks for with its token: those change nothing)."""
    seen: list[str | None] = []

    def note(request: Request) -> None:
        if request.method == "POST" and not request.url.endswith("/api/stream-ticket"):
            seen.append(request.headers.get(name))

    page.on("request", note)
    return seen


def _authorizations(page: Page) -> list[str | None]:
    """The ``Authorization`` header of every POST the page sends from now on."""
    return _post_headers(page, "authorization")


@pytest.mark.browser
def test_token_is_asked_once_and_remembered_across_reload(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(0.2), "--interval", "60", env={"SNAPSHOT_TOKEN": TOKEN})
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)  # reads are open: the page works without the token until it changes something
    form, field, button = page.locator("#token-form"), page.locator("#token-input"), page.locator("#run-now")
    expect(form).to_be_hidden()
    sent = _authorizations(page)

    with page.expect_response("**/api/snapshot/trigger") as refused:
        button.click()
    assert refused.value.status == 401
    expect(form).to_be_visible()
    expect(page.locator("#token-label")).to_have_text("Token needed")
    expect(field).to_be_focused()
    with page.expect_response("**/api/snapshot/trigger") as accepted:
        field.fill(TOKEN)
        field.press("Enter")  # the run the click asked for starts now, without a second click
    assert accepted.value.status == 202
    expect(form).to_be_hidden()
    expect(page.locator("#snapshot-last")).to_contain_text("manual")
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "idle")

    page.reload()
    expect_idle(page, re.compile(r"^Next snapshot in"))
    expect(button).to_be_enabled()
    with page.expect_response("**/api/snapshot/trigger") as again:
        button.click()
    assert again.value.status == 202
    expect(form).to_be_hidden()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "idle")
    page.locator("#pause-run").click()  # pause and resume carry the token too
    page.locator("#pause-reason").press("Enter")
    expect(page.locator("#resume-run")).to_be_visible()
    page.locator("#resume-run").click()
    expect(page.locator("#pause-run")).to_be_visible()
    assert sent == [None] + [f"Bearer {TOKEN}"] * 4
    assert page.evaluate("localStorage.getItem('snapshot-token')") == TOKEN
    watched.assert_no_page_errors()  # the 401 itself is a console error


@pytest.mark.browser
def test_a_wrong_token_is_asked_again_and_reads_can_need_it(service_factory: Any, open_page: OpenPage) -> None:
    env = {"SNAPSHOT_TOKEN": TOKEN, "SNAPSHOT_TOKEN_FOR_READS": "true"}
    service = service_factory("--command", sample_command(0.2), "--interval", "60", env=env)
    watched = open_page(service.url + "/")
    page = watched.page
    form, field, label = page.locator("#token-form"), page.locator("#token-input"), page.locator("#token-label")
    expect(form).to_be_visible()  # the event stream was refused: the page asks before it can show anything
    expect(label).to_have_text("Token needed")
    expect(page.locator("#snapshot-status")).to_have_text("Enter the service's token to see snapshots")
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "offline")

    field.fill("not-the-token-0000")
    field.press("Enter")
    expect(label).to_have_text("Token not accepted, try again")
    expect(form).to_be_visible()
    assert page.evaluate("localStorage.getItem('snapshot-token')") is None

    field.fill(TOKEN)
    field.press("Enter")
    expect_idle(page)
    expect(form).to_be_hidden()
    expect(history_row(page, 0)).to_contain_text("start-up")  # the history is a read: it needs the token too

    page.reload()  # the read cookie (for the stream) and the stored token (for changes) both survive it
    expect_idle(page)
    expect(form).to_be_hidden()
    with page.expect_response("**/api/snapshot/trigger") as accepted:
        page.locator("#run-now").click()
    assert accepted.value.status == 202
    expect(form).to_be_hidden()

    page.context.clear_cookies()  # the cookie gone, the stored token is enough: it is set again, not asked for
    page.reload()
    expect_idle(page, re.compile(r"^Next snapshot in"))
    expect(form).to_be_hidden()
    assert [cookie["name"] for cookie in page.context.cookies()] == [f"snapshot_read_{service.port}"]
    watched.assert_no_page_errors()


@pytest.mark.browser
def test_the_read_cookie_is_not_the_token_and_two_services_keep_theirs(
    service_factory: Any, open_page: OpenPage, tmp_path: Path
) -> None:
    """Cookies ignore ports: every server on this host receives the page's cookies under /api/. So the one
    the stream rides on is the service's own (HttpOnly, keyed by the service, never by the token), named after
    the service's port: two services on one host keep one each, and a refused cookie never costs the page its
    token."""
    tokens = [TOKEN, "second-service-token-4567"]
    env = {"SNAPSHOT_TOKEN_FOR_READS": "true"}
    services = [
        service_factory(
            "--command", sample_command(0.2), "--interval", "60", env={**env, "SNAPSHOT_TOKEN": token}, root=root
        )
        for token, root in zip(tokens, (tmp_path / "a", tmp_path / "b"), strict=True)
    ]

    def earlier_page_cookie(page: Page) -> None:  # a cookie that holds the token itself, not a read cookie
        page.context.add_cookies([{"name": "snapshot_token", "value": TOKEN, "domain": "127.0.0.1", "path": "/api/"}])

    watched = open_page(services[0].url + "/", before=earlier_page_cookie)
    pages = [watched.page, watched.page.context.new_page()]
    pages[1].on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
    pages[1].goto(services[1].url + "/")
    for page, token in zip(pages, tokens, strict=True):
        expect(page.locator("#token-form")).to_be_visible()
        page.locator("#token-input").fill(token)
        page.locator("#token-input").press("Enter")
        expect_idle(page)

    cookies = {cookie["name"]: cookie for cookie in pages[0].context.cookies()}
    names = [f"snapshot_read_{service.port}" for service in services]
    assert sorted(cookies) == sorted(names)  # the earlier page's token cookie is gone too
    for cookie in cookies.values():
        assert not any(token in cookie["value"] for token in tokens), cookie
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/api/"), cookie
    assert pages[0].evaluate("document.cookie") == ""  # and no script on the page can read it

    # A cookie the service refuses (the other service's value, say) costs a bearer read, not the stored token.
    wrong = {**cookies[names[0]], "value": cookies[names[1]]["value"]}
    pages[0].context.add_cookies([wrong])
    for page, token in zip(pages, tokens, strict=True):
        page.reload()
        expect_idle(page)
        expect(page.locator("#token-form")).to_be_hidden()
        assert page.evaluate("localStorage.getItem('snapshot-token')") == token
    # The refused one was replaced: each cookie reads its own service, and only that one.
    renewed = {c["name"]: c["value"] for c in pages[0].context.cookies()}
    assert sorted(renewed) == sorted(names)
    for service, name in zip(services, names, strict=True):
        for other in services:
            status = _read_status(other, {"Cookie": f"{name}={renewed[name]}", "Host": f"127.0.0.1:{service.port}"})
            assert status == (200 if other is service else 401), (service.port, other.port, status)
    watched.assert_no_page_errors()  # the refused stream is a console error


def bearer_read(response: Any) -> bool:
    """A read the page sent with the token: the service answers it with a fresh read cookie (the event stream,
    opened with a ticket, may show the state before any such read has come back)."""
    request = response.request
    return bool(
        request.method == "GET" and "/api/" in response.url and request.headers.get("authorization") and response.ok
    )


@pytest.mark.browser
def test_a_restart_refuses_the_old_read_cookie_and_the_page_gets_a_new_one_without_asking(
    service_factory: Any, open_page: OpenPage, tmp_path: Path
) -> None:
    """The read cookie's key is drawn at start, so a restart (like an expired cookie) refuses the cookie the
    page has: the page asks for the status once with its stored token, gets a new cookie, and streams again."""
    args = ("--command", sample_command(0.2), "--interval", "60")
    env = {"SNAPSHOT_TOKEN": TOKEN, "SNAPSHOT_TOKEN_FOR_READS": "true"}
    root = tmp_path / "svc"
    service: ServiceProcess = service_factory(*args, env=env, root=root)
    watched = open_page(service.url + "/")
    page = watched.page
    page.locator("#token-input").fill(TOKEN)
    with page.expect_response(bearer_read, timeout=15_000):
        page.locator("#token-input").press("Enter")
        expect_idle(page)
    before = {cookie["name"]: cookie for cookie in page.context.cookies()}
    name = f"snapshot_read_{service.port}"
    assert list(before) == [name], before
    # Max-Age: the browser forgets it by itself after 12 hours (the service refuses it from then on too).
    assert 12 * 3600 - 60 < before[name]["expires"] - datetime.now(UTC).timestamp() <= 12 * 3600, before

    service.stop()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "offline")
    again = start_service(root, *args, env=env, port=service.port)
    try:
        with page.expect_response(bearer_read, timeout=15_000):
            again.wait_ready()
            expect_idle(page, re.compile(r"^Next snapshot in"))
        expect(page.locator("#token-form")).to_be_hidden()
        after = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
        assert list(after) == [name] and after[name] != before[name]["value"], (before, after)
    finally:
        again.stop()
    watched.assert_no_page_errors()  # the refused stream is a console error


def _read_status(service: ServiceProcess, headers: dict[str, str]) -> int:
    request = urllib.request.Request(service.url + "/api/snapshot/status", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


STUBBORN_JOB = job_command(
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('PROGRESS 10 Working', flush=True)\n"
    "time.sleep(50)\n"
)
"""Ignores SIGTERM, so the run stays "stopping" for the kill grace and the page has time to show it."""


@pytest.mark.browser
def test_cancel_ends_a_running_run_as_cancelled(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", STUBBORN_JOB, "--interval", "60", "--kill-grace", "1")
    watched = open_page(service.url + "/")  # the start-up run is running
    page = watched.page
    cancel, confirm = page.locator("#cancel-run"), page.locator("#cancel-confirm")
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "running")
    expect(page.locator("#snapshot-step")).to_have_text("Working")
    expect(confirm).to_be_hidden()

    cancel.click()
    expect(confirm).to_be_visible()
    expect(cancel).to_be_hidden()
    page.locator("#cancel-no").click()  # changed our mind: nothing is sent
    expect(confirm).to_be_hidden()
    expect(cancel).to_be_visible()
    assert service.get_json("/api/snapshot/status")["stopping"] is None

    cancel.click()
    page.locator("#cancel-yes").click()
    expect(page.locator("#snapshot-status")).to_have_text("Stopping… (cancelled by request)")
    expect(cancel).to_be_hidden()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "idle")
    last = page.locator("#snapshot-last")
    expect(last).to_have_attribute("data-outcome", "cancelled")
    expect(last).to_contain_text("Cancelled")
    expect(cancel).to_be_hidden()
    watched.assert_clean()


# ------------------------------------------------------------------------------ history, logs and pause
GATED_JOB = job_command(
    "import os, sys\n"
    "reason = os.environ.get('SNAPSHOT_REASON', '')\n"
    "print('PROGRESS 50 Halfway', flush=True)\n"
    "print('<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>', flush=True)\n"
    "if 'many' in reason:\n"
    "    sys.stdout.write(''.join(f'line {i}\\n' for i in range(6000)))\n"
    "    sys.stdout.flush()\n"
    "if 'wait' in reason:\n"
    "    with open(os.environ['TEST_GATE']) as gate:\n"
    "        print('waiting at the gate', flush=True)\n"
    "        gate.readline()\n"
    "        print('through the gate', flush=True)\n"
    "        if 'twice' in reason:\n"
    "            gate.readline()\n"
    "            print('through the second gate', flush=True)\n"
    "if 'fail' in reason:\n"
    "    print('boom: disk full', file=sys.stderr, flush=True)\n"
    "    sys.exit(3)\n"
)
"""Prints a progress line and some markup; with "wait" in its reason it waits at the gate (a FIFO) for each
line the test writes; with "many", prints 6,000 lines first; with "fail", fails with a message on stderr."""


def gated_service(service_factory: Any, gate: Gate, *args: str) -> ServiceProcess:
    service: ServiceProcess = service_factory(
        "--command", GATED_JOB, "--interval", "60", *args, env={"TEST_GATE": str(gate.path)}
    )
    return service


def _trigger(service: ServiceProcess, reason: str) -> None:
    status, body = service.post_json("/api/snapshot/trigger", {"reason": reason})
    assert status == 202, body


@pytest.mark.browser
def test_history_lists_real_runs_with_outcome_trigger_and_reason(
    service_factory: Any, open_page: OpenPage, gate: Gate
) -> None:
    service = gated_service(service_factory, gate)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    rows = page.locator("#history-rows tr")
    expect(rows).to_have_count(1)
    expect(history_row(page, 0)).to_contain_text("Completed")
    expect(history_row(page, 0)).to_contain_text("start-up")

    _trigger(service, "wait here")
    expect(history_row(page, 0)).to_contain_text("Running")  # the panel refreshes when a run starts
    expect(history_row(page, 0).locator("td").nth(2)).to_have_text(re.compile(r"^running "))
    for reason in ("a", "b", "c fail"):
        _trigger(service, reason)  # folded into one follow-up run
    gate.release()

    expect(rows).to_have_count(3)
    failed, done, first = history_row(page, 0), history_row(page, 1), history_row(page, 2)
    expect(failed).to_have_attribute("data-outcome", "error", timeout=10_000)
    expect(failed.locator(".outcome")).to_have_text("Failed")  # a word, not a colour alone
    cells = failed.locator("td")
    expect(cells.nth(3)).to_have_text("manual + 2 more")
    expect(cells.nth(3)).to_have_attribute("title", re.compile(r"^manual at .*: a\nmanual at .*: b\nmanual at"))
    expect(failed.locator(".history-reason")).to_have_text("a; b; c fail")
    expect(failed.locator(".history-error")).to_have_text("exited with code 3: boom: disk full")
    expect(cells.nth(1)).to_have_text("just now")
    expect(cells.nth(1).locator("time")).to_have_attribute("title", re.compile(r"\d"))
    expect(cells.nth(2)).to_have_text(re.compile(r"^(< 0\.1|\d+(\.\d)?) s$"))
    expect(done.locator(".outcome")).to_have_text("Completed")
    expect(done.locator("td").nth(3)).to_have_text("manual")
    expect(done.locator(".history-reason")).to_have_text("wait here")
    expect(first.locator("td").nth(3)).to_have_text("start-up")
    expect(page.locator("#history-more")).to_be_hidden()

    # The failed run's log: the job's markup shows as text and runs nothing.
    failed.locator("button").click()
    view, lines = page.locator("#log-view"), page.locator("#log-lines")
    expect(view).to_be_visible()
    expect(page.locator("#log-title")).to_contain_text("Log — Failed")
    expect(page.locator("#log-state")).to_have_text(re.compile(r"^Failed after "))
    expect(lines).to_contain_text('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>')
    expect(lines.locator(".log-line").last).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3} err boom: disk full$"))
    expect(lines.locator(".log-line").last).to_have_attribute("data-stream", "err")
    expect(lines.locator("img, script")).to_have_count(0)
    assert page.evaluate("window.__xss") is None
    run_id = failed.get_attribute("data-run-id")
    expect(page.locator("#log-full")).to_have_attribute("href", f"/api/snapshot/runs/{run_id}/log")
    expect(failed).to_have_attribute("aria-current", "true")
    page.locator("#log-close").click()
    expect(view).to_be_hidden()
    expect(failed.locator("button")).to_be_focused()

    # Pages of two: "Show more" fetches the rest with the answer's nextCursor.
    page.route(
        re.compile(r".*/api/snapshot/runs\?limit=20$"),
        lambda route: route.continue_(url=route.request.url.replace("limit=20", "limit=2")),
    )
    page.reload()
    expect(rows).to_have_count(2)
    more = page.locator("#history-more")
    more.click()
    expect(rows).to_have_count(3)
    expect(history_row(page, 2).locator("td").nth(3)).to_have_text("start-up")
    expect(more).to_be_hidden()
    watched.assert_clean()


@pytest.mark.browser
def test_double_click_on_run_now_starts_one_run(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(0.5), "--interval", "60")
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    # The second page has no crypto.randomUUID (as on a plain-http origin): the key comes from getRandomValues.
    for init_script in (None, "delete Crypto.prototype.randomUUID;"):
        watched = open_page(service.url + "/", init_script=init_script)
        page = watched.page
        expect_idle(page)
        runs = len(service.get_json("/api/snapshot/runs")["runs"])
        keys = _post_headers(page, "idempotency-key")
        page.locator("#run-now").dblclick()
        expect(page.locator("snapshot-bar")).to_have_attribute("state", "running")
        expect(page.locator("snapshot-bar")).to_have_attribute("state", "idle")
        expect(history_row(page, 0)).to_contain_text("manual")
        assert len(keys) == 1 and uuid.match(keys[0] or ""), keys
        latest = service.get_json("/api/snapshot/runs")["runs"]
        assert len(latest) == runs + 1
        assert latest[0]["reason"] == "web", "the key check must not lose the click's reason"
        watched.assert_clean()


@pytest.mark.browser
def test_pause_and_resume_from_the_page(service_factory: Any, open_page: OpenPage) -> None:
    service = service_factory("--command", sample_command(0.3), "--interval", "60")
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    status = page.locator("#snapshot-status")
    pause, resume, form = page.locator("#pause-run"), page.locator("#resume-run"), page.locator("#pause-form")
    expect(resume).to_be_hidden()

    pause.click()
    expect(form).to_be_visible()
    expect(page.locator("#pause-reason")).to_be_focused()
    page.keyboard.press("Escape")  # changed our mind: nothing is sent
    expect(form).to_be_hidden()
    expect(pause).to_be_focused()
    assert service.get_json("/api/snapshot/status")["paused"] is None

    page.keyboard.press("Enter")  # the keyboard alone does it
    page.locator("#pause-reason").fill("maintenance")
    page.keyboard.press("Enter")
    expect(status).to_have_text("Paused — automatic snapshots off (maintenance)")
    expect(resume).to_be_visible()
    expect(resume).to_be_focused()
    expect(pause).to_be_hidden()
    assert service.get_json("/api/snapshot/status")["paused"]["reason"] == "maintenance"

    page.locator("#run-now").click()  # manual runs still run
    expect(history_row(page, 0)).to_contain_text("manual")
    expect(history_row(page, 0)).to_have_attribute("data-outcome", "completed")
    expect(status).to_have_text("Paused — automatic snapshots off (maintenance)")

    resume.click()
    expect(status).to_have_text(re.compile(r"^Next snapshot in"))
    expect(pause).to_be_visible()
    assert service.get_json("/api/snapshot/status")["paused"] is None
    watched.assert_clean()


@pytest.mark.browser
def test_log_view_follows_a_running_job_live(service_factory: Any, open_page: OpenPage, gate: Gate) -> None:
    service = gated_service(service_factory, gate)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    _trigger(service, "wait many twice")
    running = history_row(page, 0)
    expect(running.locator(".outcome")).to_have_text("Running")
    eta = page.locator("#snapshot-eta")
    expect(eta).to_be_visible()  # the service's estimate (from the history here: the start-up run's length)
    expect(eta).to_have_text(re.compile(r"^(about \d+ min left|less than a minute left|taking longer than estimated)$"))

    # Its first line is in the log by the time its progress shows (an empty log's tail would be a 416: handled
    # by the page, but a console error).
    expect(page.locator("#snapshot-step")).to_have_text("Halfway")
    running.locator("button").click()
    lines = page.locator("#log-lines .log-line")
    expect(lines.last).to_have_text(re.compile(r" out waiting at the gate$"))
    expect(lines).to_have_count(5000)  # 6,003 lines printed: the page keeps the last 5,000
    expect(lines.first).to_have_text(re.compile(r" out line 1001$"))
    expect(page.locator("#log-trimmed")).to_be_visible()
    expect(page.locator("#log-trimmed a")).to_have_attribute("href", re.compile(r"/log$"))
    expect(page.locator("#log-state")).to_have_text("Following live…")
    at_bottom = (
        "(() => { const b = document.querySelector('snapshot-log').shadowRoot.getElementById('log-lines');"
        " return b.scrollTop + b.clientHeight >= b.scrollHeight - 8; })()"
    )
    page.wait_for_function(at_bottom)

    gate.release()  # a new line, live; the reader is at the bottom, so the view follows it
    expect(lines.last).to_have_text(re.compile(r" out through the gate$"))
    page.wait_for_function(at_bottom)

    page.locator("#log-lines").evaluate("box => { box.scrollTop = 0; }")  # the reader scrolls up: it stays put
    gate.release()
    expect(lines.last).to_have_text(re.compile(r" out through the second gate$"))
    assert page.locator("#log-lines").evaluate("box => box.scrollTop") == 0
    expect(page.locator("#log-state")).to_have_text(re.compile(r"^Completed after "))  # the stream's end
    expect(page.locator("#log-title")).to_contain_text("Log — Completed")
    expect(lines).to_have_count(5000)
    expect(eta).to_be_hidden()
    watched.assert_clean()


@pytest.mark.browser
def test_eta_pause_and_checks_render_from_the_status_document(open_page: OpenPage) -> None:
    """The bar's ETA counts down by itself between events, and the pause and the checks show; the stream is
    faked (as above) to send exactly these documents."""
    server_time = datetime.now(UTC) - timedelta(hours=3)

    def iso(at: datetime) -> str:
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    run = {
        "runId": "20260101T000000Z-abcdef",
        "status": "running",
        "trigger": "http",
        "reason": "web",
        "triggers": [{"source": "http", "at": iso(server_time), "reason": "web"}],
        "triggerCount": 1,
        "startedAt": iso(server_time - timedelta(seconds=30)),
        "finishedAt": None,
        "durationSeconds": None,
        "exitCode": None,
        "error": None,
        "step": "Fetching",
    }
    checks = [
        {"kind": "long", "runId": run["runId"], "message": "Running 3x longer than usual", "since": iso(server_time)},
        {"kind": "late", "runId": None, "message": "Started 4 min late", "since": iso(server_time)},
    ]
    paused = {"since": iso(server_time), "reason": "maintenance"}
    document = {
        **_status_document(server_time, server_time + timedelta(minutes=60)),
        "running": True,
        "progress": {"status": "running", "step": "Fetching", "progress": 40},
        "currentRun": run,
        "eta": {"finishAt": iso(server_time + timedelta(seconds=150.7)), "secondsLeft": 150.7, "basis": "progress"},
        "paused": paused,
        "checks": checks,
    }
    broken = {"success": False, "message": "the run history cannot be read: disk I/O error"}
    watched = _fake_stream_page(open_page, runs=(503, broken))
    page = watched.page
    page.evaluate("data => window.__stream.send(data)", json.dumps(document))
    note = page.locator("#history-note")
    expect(note).to_have_text("History unavailable: the run history cannot be read: disk I/O error")
    eta = page.locator("#snapshot-eta")
    expect(eta).to_have_text("about 3 min left")
    expect(eta).to_have_text("about 2 min left", timeout=3_000)  # 150 s left: it moved with no event
    expect(eta).to_have_attribute("title", re.compile(r"^Estimated from the progress so far; done about "))
    expect(page.locator("#snapshot-paused")).to_have_text("automatic snapshots paused")
    expect(page.locator("#resume-run")).to_be_visible()
    expect(page.locator("#pause-run")).to_be_hidden()
    expect(page.locator("#snapshot-checks")).to_have_text("⚠ Running 3x longer than usual (+1 more)")
    expect(page.locator("#snapshot-checks")).to_have_attribute(
        "title", "Long run: Running 3x longer than usual\nLate: Started 4 min late"
    )
    expect(history_row(page, 0).locator(".outcome")).to_have_text("Running")  # from the stream, despite the 503
    # Every chip at once, then the cancel confirmation too, fit the narrow screens (see the layout test below).
    problems = layout_problems(page, "running, paused, with checks")
    page.locator("#cancel-run").click()
    expect(page.locator("#cancel-confirm")).to_be_visible()
    problems += layout_problems(page, "the cancel confirmation")
    assert problems == [], "\n".join(problems)
    page.locator("#cancel-no").click()

    idle = {**document, "running": False, "currentRun": None, "eta": None, "checks": []}
    page.evaluate("data => window.__stream.send(data)", json.dumps(idle))
    expect(page.locator("#snapshot-status")).to_have_text("Paused — automatic snapshots off (maintenance)")
    expect(eta).to_be_hidden()
    expect(page.locator("#snapshot-paused")).to_be_hidden()
    expect(page.locator("#snapshot-checks")).to_be_hidden()
    expect(note).to_have_text("History unavailable: the run history cannot be read: disk I/O error")
    expect(page.locator("#history-table")).to_be_hidden()

    # a status document from a service that knew neither pausing nor ETAs nor checks
    older = {k: v for k, v in idle.items() if k not in ("paused", "eta", "checks")}
    page.evaluate("data => window.__stream.send(data)", json.dumps(older))
    expect(page.locator("#snapshot-status")).to_have_text(IDLE_60)
    expect(page.locator("#pause-run")).to_be_hidden()
    expect(page.locator("#resume-run")).to_be_hidden()
    watched.assert_no_page_errors()
    assert all("503" in error for error in watched.console_errors), watched.console_errors


# ----------------------------------------------------------------------------- framing and the page's policy
@contextlib.contextmanager
def framing_site() -> Iterator[str]:
    """A second web server on another port of this host (so another origin) whose page ``/?src=URL`` shows
    URL in an iframe ``#framed``: the page of a clickjacker. Its origin is yielded."""

    async def page(request: web.Request) -> web.Response:
        src = html.escape(request.query["src"], quote=True)
        body = (
            f'<!doctype html><title>framer</title><iframe id="framed" src="{src}" width="1100" height="300"></iframe>'
        )
        return web.Response(text=body, content_type="text/html")

    # Its own event loop in its own thread: Playwright's sync API keeps a loop running in this one.
    started: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = queue.Queue()

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/", page)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            stop = asyncio.Event()
            started.put((asyncio.get_running_loop(), stop, runner.addresses[0][1]))
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    loop, stop, port = started.get(timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


@pytest.mark.browser
def test_another_origin_cannot_frame_the_page_unless_named(
    service_factory: Any, open_page: OpenPage, tmp_path: Path
) -> None:
    """Framed by a page on another port, ours would take that page's clicks (Run Now, Pause, Cancel) with the
    token it has stored. Chromium must refuse to show it there, unless --frame-ancestor names that origin."""
    with framing_site() as framer:
        service = service_factory("--command", sample_command(0.2), "--interval", "60", root=tmp_path / "a")
        blocked = open_page("about:blank")
        with blocked.page.expect_console_message(lambda m: "frame-ancestors" in m.text) as refused:
            blocked.page.goto(f"{framer}/?src={service.url}/")
        assert "violates the following Content Security Policy directive" in refused.value.text
        [framed] = blocked.page.main_frame.child_frames
        assert not framed.url.startswith(service.url), framed.url  # an error page, not ours
        assert blocked.page.frame_locator("#framed").locator("snapshot-bar").count() == 0

        allowed = service_factory(
            "--command", sample_command(0.2), "--interval", "60", "--frame-ancestor", framer, root=tmp_path / "b"
        )
        shown = open_page(f"{framer}/?src={allowed.url}/")
        inside = shown.page.frame_locator("#framed")
        expect(inside.locator("#snapshot-status")).to_have_text(IDLE_60, timeout=15_000)
        expect(inside.locator("#run-now")).to_be_enabled()
        assert not [error for error in shown.console_errors if "Content Security Policy" in error], shown.console_errors
        shown.assert_no_page_errors()


VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI + " " + (event.sample || ""));
});
"""


@pytest.mark.browser
def test_the_page_works_under_its_content_security_policy(service_factory: Any, open_page: OpenPage) -> None:
    """Everything the page does (the stream, Run Now, the token form, the history, a run's log, pause) goes on
    under its own CSP without a single violation; an inline script slipped in is refused."""
    service = service_factory("--command", sample_command(0.3), "--interval", "60", env={"SNAPSHOT_TOKEN": TOKEN})
    with urllib.request.urlopen(service.url + "/", timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
    assert policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, policy
    watched = open_page(service.url + "/", init_script=VIOLATIONS)
    page = watched.page
    expect_idle(page)
    page.locator("#run-now").click()
    field = page.locator("#token-input")
    expect(field).to_be_visible()
    field.fill(TOKEN)
    field.press("Enter")
    expect(history_row(page, 0)).to_contain_text("manual")
    expect(history_row(page, 0)).to_have_attribute("data-outcome", "completed")
    history_row(page, 0).locator("button").click()
    expect(page.locator("#log-lines .log-line").last).to_contain_text("PROGRESS")
    page.locator("#log-close").click()
    page.locator("#pause-run").click()
    page.locator("#pause-reason").press("Enter")
    expect(page.locator("#resume-run")).to_be_visible()
    page.locator("#resume-run").click()
    expect(page.locator("#pause-run")).to_be_visible()
    assert page.evaluate("window.__violations") == []
    assert not [error for error in watched.console_errors if "Content Security Policy" in error]
    watched.assert_no_page_errors()

    # The policy is really in force: an inline script added to the page is refused, and reported.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.append(s); }"
    )
    page.wait_for_function("() => window.__violations.length > 0")
    assert page.evaluate("window.__ran") is None
    assert page.evaluate("window.__violations")[0].startswith("script-src"), page.evaluate("window.__violations")


# --------------------------------------------------------------------------------------- narrow screens
LONG_STEP = "Copying the production database dump to the off-site bucket, volume 3 of 12, this can take a while"
LONG_ERROR = (
    "boom: the storage backend refused the upload of"
    " /var/lib/snapshots/2026-12-07T04:00:00Z/production-cluster-eu-west-1/volume-0003.tar.zst"
    " because the bucket quota was exceeded"
)
LONG_REASON = "database migration in progress, no snapshots until the schema change has reached every replica"
LAYOUT_JOB = job_command(
    "import os, sys\n"
    "reason = os.environ.get('SNAPSHOT_REASON', '')\n"
    f"print('PROGRESS 13 {LONG_STEP}', flush=True)\n"
    "if 'wait' in reason:\n"
    "    with open(os.environ['TEST_GATE']) as gate:\n"
    "        print('waiting at the gate', flush=True)\n"
    "        gate.readline()\n"
    "if 'fail' in reason:\n"
    f"    print({LONG_ERROR!r}, file=sys.stderr, flush=True)\n"
    "    sys.exit(3)\n"
)
"""Reports progress with a long step; with "wait" in its reason it waits at the gate; with "fail", fails with a
long error."""


@pytest.mark.browser
def test_the_page_fits_every_width_in_every_state(service_factory: Any, open_page: OpenPage, gate: Gate) -> None:
    """At 1280, 800 and 390 px the page never scrolls sideways, and the bar's pieces neither overlap nor leave
    the screen: idle with a long history, running with a long step, the pause form, paused with a long reason,
    the log view, the token forms and offline."""
    service: ServiceProcess = service_factory(
        "--command", LAYOUT_JOB, "--interval", "60", env={"TEST_GATE": str(gate.path)}
    )
    watched = open_page(service.url + "/")
    page = watched.page
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    expect_idle(page)
    problems: list[str] = []

    _trigger(service, f"fail: {LONG_REASON}")
    expect(history_row(page, 0)).to_have_attribute("data-outcome", "error")
    expect(page.locator("#snapshot-last")).to_contain_text("Failed")
    problems += layout_problems(page, "idle, a long history")

    _trigger(service, f"wait: {LONG_REASON}")
    expect(page.locator("#snapshot-step")).to_have_text(LONG_STEP)
    expect(page.locator("#snapshot-eta")).to_be_visible()
    expect(page.locator("#snapshot-percent")).to_have_text("13%")
    problems += layout_problems(page, "running")

    page.locator("#pause-run").click()
    expect(page.locator("#pause-form")).to_be_visible()
    problems += layout_problems(page, "running, the pause form open")
    page.locator("#pause-reason").fill(LONG_REASON)
    page.locator("#pause-reason").press("Enter")
    expect(page.locator("#snapshot-paused")).to_be_visible()
    problems += layout_problems(page, "running, paused")

    history_row(page, 0).locator("button").click()
    expect(page.locator("#log-lines .log-line").last).to_contain_text("waiting at the gate")
    problems += layout_problems(page, "running, the log view open")

    gate.release()
    expect(page.locator("#snapshot-status")).to_have_text(f"Paused — automatic snapshots off ({LONG_REASON})")
    expect(page.locator("#log-state")).to_have_text(re.compile(r"^Completed after "))
    problems += layout_problems(page, "paused, the log view open")

    page.locator("#resume-run").click()
    page.locator("#pause-run").click()
    expect(page.locator("#pause-form")).to_be_visible()
    problems += layout_problems(page, "idle, the pause form open")

    service.stop()
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "offline")
    expect(page.locator("#snapshot-status")).to_have_text("Snapshot service unreachable — reconnecting…")
    problems += layout_problems(page, "offline")
    watched.assert_no_page_errors()

    # The token asked for a change (Run Now), and for reads: then the history says why it is empty.
    tokened = service_factory(
        "--command", sample_command(0.2), "--interval", "60", env={"SNAPSHOT_TOKEN": TOKEN}, root=service.root / "t"
    )
    watched = open_page(tokened.url + "/")
    page = watched.page
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    expect_idle(page)
    page.locator("#run-now").click()
    expect(page.locator("#token-form")).to_be_visible()
    problems += layout_problems(page, "the token form open")

    env = {"SNAPSHOT_TOKEN": TOKEN, "SNAPSHOT_TOKEN_FOR_READS": "true"}
    reads = service_factory("--command", sample_command(0.2), "--interval", "60", env=env, root=service.root / "r")
    watched = open_page(reads.url + "/")
    page = watched.page
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    expect(page.locator("#token-form")).to_be_visible()
    problems += layout_problems(page, "the token form open for reads")
    assert problems == [], "\n".join(problems)
    expect(page.locator("#history-note")).to_have_text("Enter the token above to see the history")
    watched.assert_no_page_errors()


@pytest.mark.browser
def test_the_page_has_no_serious_accessibility_violations(
    service_factory: Any, open_page: OpenPage, axe_source: str
) -> None:
    """axe-core over our page: idle with a history, a run's log open, the pause form, and paused."""
    service = service_factory("--command", sample_command(0.2), "--interval", "60")
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    expect(history_row(page, 0)).to_contain_text("start-up")
    problems = {"idle": run_axe(page)}
    history_row(page, 0).locator("button").click()
    expect(page.locator("#log-state")).to_have_text(re.compile(r"^Completed after "))
    problems["log open"] = run_axe(page)
    page.locator("#pause-run").click()
    expect(page.locator("#pause-form")).to_be_visible()
    problems["pause form"] = run_axe(page)
    page.locator("#pause-reason").press("Enter")
    expect(page.locator("#resume-run")).to_be_visible()
    problems["paused"] = run_axe(page)
    assert {state: found for state, found in problems.items() if found} == {}
    watched.assert_clean()


TIMER_COUNT = """
(() => {
  const live = new Set();
  const wrap = (set, clear, once) => {
    const realSet = window[set].bind(window), realClear = window[clear].bind(window);
    window[set] = (fn, ms, ...args) => {
      const id = realSet((...a) => { if (once) live.delete(id); fn(...a); }, ms, ...args);
      live.add(id);
      return id;
    };
    window[clear] = (id) => { live.delete(id); realClear(id); };
  };
  wrap('setTimeout', 'clearTimeout', true);
  wrap('setInterval', 'clearInterval', false);
  window.__liveTimers = () => live.size;
})();
"""


@pytest.mark.browser
def test_elements_that_leave_the_page_leave_no_timer_or_stream(service_factory: Any, open_page: OpenPage) -> None:
    """Our page's elements, a log followed live and a run's steps open beside it, then all removed: no timer
    of theirs is left, and the service counts no event stream or log stream from the page."""
    service = service_factory("--command", sample_command(30), "--interval", "60")
    watched = open_page(service.url + "/", init_script=TIMER_COUNT)
    page = watched.page
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "running", timeout=15_000)
    history_row(page, 0).locator("button").click()
    expect(page.locator("#log-state")).to_have_text("Following live…")
    expect(page.locator("snapshot-steps#run-steps")).to_have_count(1)
    _until_streams(page, service, (1, 1))  # the service counts a stream a moment after the browser has it
    assert page.evaluate("window.__liveTimers()") > 0  # the bar's and the history's tickers, at least
    page.evaluate(
        "() => document.querySelectorAll('snapshot-bar, snapshot-history, snapshot-log, snapshot-steps,"
        " snapshot-step-chart').forEach(element => element.remove())"
    )
    assert page.evaluate("window.__liveTimers()") == 0
    _until_streams(page, service, (0, 0))
    watched.assert_no_page_errors()


def _until_streams(page: Page, service: ServiceProcess, counts: tuple[int, int]) -> None:
    """Wait until the service counts ``counts`` streams: another process, so polled, with a deadline."""
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while _stream_counts(service) != counts:
        assert datetime.now(UTC) < deadline, (_stream_counts(service), counts)
        page.wait_for_timeout(50)


def _stream_counts(service: ServiceProcess) -> tuple[int, int]:
    """The service's open event streams and log streams (its /metrics)."""
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = [
        re.search(rf"^{name} (\d+)", text, re.MULTILINE) for name in ("snapshot_sse_clients", "snapshot_log_streams")
    ]
    assert all(counts), text
    return int(counts[0].group(1)), int(counts[1].group(1))  # type: ignore[union-attr]
