"""A run's steps in a real headless Chromium: ``<snapshot-steps>`` (the timeline), ``<snapshot-step-chart>``
(where the time goes) and the bar's detail line, on our page.

Two kinds of test. Against a real service process running real jobs that report their steps in the JSON form of
``PROGRESS`` (the timeline of the running run, a past run's opened from the history, the chart after a few
runs, every width, axe). And, where exact documents matter (a step that changes while its steps are being
read, a detail that changes without any read, long names at every width), the real page's files with a faked
event stream and faked answers, as in tests/web/test_browser.py.

``SNAPSHOT_SCREENSHOT=1`` also saves ``docs/steps.png``: the page while a snapshot runs, its timeline under the
bar. ``SNAPSHOT_LAYOUT_SHOTS=<folder>`` saves a screenshot of every state and width measured.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.support import REPO, ServiceProcess, job_command
from tests.web.axe import run_axe
from tests.web.browsing import WIDTHS, Gate, OpenPage, Watched, expect_idle, layout_problems
from tests.web.test_browser import FAKE_EVENT_SOURCE, ONE_JOB, history_row

pytestmark = pytest.mark.browser

SCREENSHOT = REPO / "docs" / "steps.png"
PRS = "Fetching GitHub PRs"
LONG_NAME = "Fetching CI results for every open pull request of every repository in the organisation"
LONG_DETAIL = "repo 5/15: octo/" + "an-unusually-long-repository-name-" * 4 + "service"

MEASURE_PANELS = """() => {
    const width = window.innerWidth;
    const problems = [];
    const scrollWidth = document.documentElement.scrollWidth;
    if (scrollWidth > width) {
        const wide = [];
        const walk = root => {
            for (const el of root.querySelectorAll('*')) {
                const right = el.getBoundingClientRect().right;
                if (right > width + 0.5) wide.push(`${el.localName}.${el.getAttribute('class')}`);
                if (el.shadowRoot) walk(el.shadowRoot);
            }
        };
        walk(document);
        const what = wide.slice(0, 8).join(', ');
        problems.push(`the page scrolls sideways: scrollWidth ${scrollWidth} > ${width} (${what})`);
    }
    const selector = 'h2, .panel-note, .steps-summary, .step-name, .step-time, .step-detail, .step-remark,'
        + ' .chart svg, .chart text, .chart rect, .chart-legend, summary, .chart-table th, .chart-table td';
    const hosts = [...document.querySelectorAll('snapshot-steps, snapshot-step-chart')];
    const boxOf = el => el.getBoundingClientRect();
    // Inside a visually hidden box (for screen readers only: clipped to nothing), nothing is seen to overlap.
    const clipped = el => {
        for (let at = el; at; at = at.parentElement) {
            const style = getComputedStyle(at);
            if (style.clipPath !== 'none' || style.clip !== 'auto') return true;
        }
        return false;
    };
    const overlap = (a, b) => {
        const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        return x > 0.5 && y > 0.5 ? `${Math.round(x)}x${Math.round(y)} px` : null;
    };
    for (const host of hosts) {
        const where = host.localName + (host.id ? '#' + host.id : '');
        const name = el => `${where} ${el.localName}.${el.getAttribute('class') || ''} "${
            (el.textContent || '').slice(0, 30)}"`;
        const pieces = [...host.shadowRoot.querySelectorAll(selector)]
            .map(el => ({el, box: boxOf(el)}))
            .filter(p => p.el.checkVisibility() && p.box.width > 0 && p.box.height > 0 && !clipped(p.el));
        for (const {el, box} of pieces) {
            if (box.left < -0.5 || box.right > width + 0.5) {
                problems.push(`${name(el)} is outside the viewport: ${Math.round(box.left)}..${Math.round(box.right)}`);
            }
            if (!(el instanceof SVGElement) && getComputedStyle(el).overflowX === 'visible'
                && el.scrollWidth > el.clientWidth + 1) {
                problems.push(`${name(el)}'s text runs out of its box: ${el.scrollWidth} > ${el.clientWidth}`);
            }
        }
        for (let i = 0; i < pieces.length; i++) {
            for (let j = i + 1; j < pieces.length; j++) {
                const a = pieces[i], b = pieces[j];
                if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
                const by = overlap(a.box, b.box);
                if (by) problems.push(`${name(a.el)} and ${name(b.el)} overlap by ${by}`);
            }
        }
    }
    const panels = [...document.querySelectorAll('main > *, .run-view > *')].filter(el => el.checkVisibility());
    for (let i = 0; i < panels.length; i++) {
        for (let j = i + 1; j < panels.length; j++) {
            if (panels[i].contains(panels[j]) || panels[j].contains(panels[i])) continue;
            const by = overlap(boxOf(panels[i]), boxOf(panels[j]));
            if (by) problems.push(`${panels[i].localName} and ${panels[j].localName} overlap by ${by}`);
        }
    }
    return problems;
}"""


def panel_problems(page: Page, state: str) -> list[str]:
    """What does not fit in the steps and the chart (and the bar, layout_problems) at each of WIDTHS."""
    problems = []
    shots = os.environ.get("SNAPSHOT_LAYOUT_SHOTS")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        # The chart is drawn for its width when its ResizeObserver says so: wait for that drawing.
        page.wait_for_function(
            """(width) => [...document.querySelectorAll('snapshot-step-chart')].every(chart => {
                const svg = chart.shadowRoot.querySelector('.chart svg');
                return !svg || Math.abs(svg.getBoundingClientRect().width
                    - chart.shadowRoot.querySelector('.chart').clientWidth) < 1;
            })""",
            arg=width,
        )
        problems += [f"{state} at {width} px: {problem}" for problem in page.evaluate(MEASURE_PANELS)]
        if shots:
            page.screenshot(path=Path(shots) / f"steps-{re.sub(r'[^a-z]+', '-', state)}-{width}.png", full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    return problems + layout_problems(page, state)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timeline(page: Page, host: str = "#live-steps") -> Locator:
    """The rows of a ``<snapshot-steps>`` on the page."""
    return page.locator(f"{host} li.step")


def row_texts(page: Page, host: str = "#live-steps") -> list[tuple[str, str]]:
    """Each row's state and name."""
    rows = timeline(page, host)
    return [
        (rows.nth(i).get_attribute("data-state") or "", rows.nth(i).locator(".step-name").inner_text())
        for i in range(rows.count())
    ]


# ------------------------------------------------------------------------------------------ a faked service
@dataclass
class FakeService:
    """The real page's files at a made-up origin, a fake event stream, and answers by API path (a JSON body, or a
    (status, body) pair); every other path is a 404. ``asked`` lists every API path read, in order."""

    answers: dict[str, Any]
    asked: list[str] = field(default_factory=list)
    watched: Watched | None = None

    def serve(self, route: Route) -> None:
        web = (REPO / "web").resolve()
        parts = urlsplit(route.request.url)
        path = parts.path
        file = (web / (path.lstrip("/") or "index.html")).resolve()
        if not path.startswith("/api/") and file.is_relative_to(web) and file.is_file():
            route.fulfill(path=file, content_type="text/javascript" if file.suffix == ".js" else None)
            return
        self.asked.append(path + (f"?{parts.query}" if parts.query else ""))
        answer = self.answers.get(path)
        if answer is None:
            route.fulfill(status=404, json={"success": False, "message": "no such path"})
        elif isinstance(answer, tuple):
            route.fulfill(status=answer[0], json=answer[1])
        else:
            route.fulfill(json=answer)

    def open(self, open_page: OpenPage, width: int = WIDTHS[0]) -> Page:
        self.watched = open_page(
            "http://snapshot.test/",
            init_script=FAKE_EVENT_SOURCE,
            before=lambda page: page.route("http://snapshot.test/**", self.serve),
            viewport={"width": width, "height": 900},
        )
        page = self.watched.page
        page.wait_for_function("() => window.__stream && window.__stream.readyState === 1")
        return page

    def send(self, document: dict[str, Any]) -> None:
        assert self.watched is not None
        self.watched.page.evaluate("data => window.__stream.send(data)", json.dumps(document))

    def count(self, path: str) -> int:
        return sum(asked == path for asked in self.asked)


NOW = datetime.now(UTC).replace(microsecond=0)
RUN_ID = "20261207T100000Z-aaaaaa"
LAST_ID = "20261207T093000Z-bbbbbb"
USUAL = [("Starting", 1.0), (PRS, 720.0), ("Fetching reviews", 120.0), (LONG_NAME, 200.0), ("Writing", 12.0)]


def step_json(name: str, start: datetime, seconds: float | None, **extra: Any) -> dict[str, Any]:
    end = None if seconds is None else start + timedelta(seconds=seconds)
    return {
        "name": name,
        "startedAt": iso(start),
        "endedAt": None if end is None else iso(end),
        "durationSeconds": seconds,
        "percentStart": 0,
        "percentEnd": 0,
        "detail": None,
        "done": None,
        "total": None,
        **extra,
    }


def stats_json(slow: str | None = "Fetching reviews") -> dict[str, Any]:
    return {
        "runs": 12,
        "runIds": [LAST_ID],
        "medianRunSeconds": 1053.0,
        "latestRunId": LAST_ID,
        "steps": [
            {
                "name": name,
                "runs": 12,
                "medianSeconds": median,
                "p90Seconds": median * 1.3,
                "share": median / 1053,
                "latestSeconds": median * (2 if name == slow else 1),
                "slow": name == slow,
            }
            for name, median in USUAL
        ],
    }


def status_json(step: str, started: datetime, **progress: Any) -> dict[str, Any]:
    """The status document of run RUN_ID at ``step`` (begun at ``started``), the server's clock at NOW."""
    return {
        "running": True,
        "lastRunAt": iso(NOW - timedelta(minutes=5)),
        "nextRunAt": iso(NOW + timedelta(minutes=25)),
        "intervalMinutes": 30,
        "progress": {"status": "running", "step": step, "progress": 40, "stepStartedAt": iso(started), **progress},
        "queued": False,
        "currentRun": {"runId": RUN_ID, "status": "running", "trigger": "timer", "startedAt": iso(NOW)},
        "lastRun": {
            "runId": LAST_ID,
            "status": "completed",
            "trigger": "timer",
            "startedAt": iso(NOW - timedelta(hours=1)),
            "finishedAt": iso(NOW - timedelta(minutes=42)),
            "durationSeconds": 1053.0,
        },
        "paused": None,
        "eta": {"basis": "steps", "finishAt": iso(NOW + timedelta(minutes=9)), "secondsLeft": 540},
        "serverTime": iso(NOW),
    }


def running_steps(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"runId": RUN_ID, "status": "running", "steps": list(steps), "truncated": False}


def steps_path(run_id: str) -> str:
    return f"/api/snapshot/runs/{run_id}/steps"


def fake_service() -> FakeService:
    """A faked service with no runs in its history, the step figures of stats_json(), and the steps of the last
    completed run (LAST_ID) as USUAL has them."""
    start = NOW - timedelta(hours=1)
    last = []
    for name, seconds in USUAL:
        last.append(step_json(name, start, seconds))
        start += timedelta(seconds=seconds)
    return FakeService(
        {
            "/api/jobs": ONE_JOB,
            "/api/snapshot/runs": {"runs": [], "nextCursor": None},
            "/api/snapshot/steps": stats_json(),
            steps_path(LAST_ID): {"runId": LAST_ID, "status": "completed", "steps": last, "truncated": False},
        }
    )


# ------------------------------------------------------------------------------------------- faked tests
def test_the_timeline_shows_the_live_detail_and_reads_the_steps_only_when_the_step_changes(open_page: OpenPage) -> None:
    """A new detail comes with the status document and is shown at once, with no read; a new step is shown at
    once too (the one before it ends where it begins), and the steps are read again for it, once."""
    start = NOW - timedelta(seconds=40)
    fake = fake_service()
    fake.answers[steps_path(RUN_ID)] = running_steps(
        step_json("Starting", start, 1.0), step_json(PRS, start + timedelta(seconds=1), None)
    )
    page = fake.open(open_page)
    prs_start = start + timedelta(seconds=1)
    fake.send(status_json(PRS, prs_start, detail="repo 1/15: octo/api", done=1, total=15))
    rows = timeline(page)
    expect(rows).to_have_count(5)  # Starting, the PRs now, and three to come (from the latest completed run)
    assert row_texts(page) == [
        ("done", "Starting"),
        ("current", PRS),
        ("todo", "Fetching reviews"),
        ("todo", LONG_NAME),
        ("todo", "Writing"),
    ]
    current = page.locator("#live-steps li[aria-current=step]")
    expect(current.locator(".step-detail")).to_have_text("repo 1/15: octo/api")
    expect(current.locator(".step-time")).to_have_text(re.compile(r"^\d+ s so far$"))
    expect(current.locator(".step-remark")).to_have_text("usually 12 min")
    expect(rows.nth(0).locator(".step-time")).to_have_text("1 s")
    expect(rows.nth(2).locator(".step-time")).to_have_text("usually 2 min")
    expect(page.locator("#live-steps #steps-title")).to_have_text("Steps of the running snapshot")
    expect(page.locator("#live-steps #steps-summary")).to_have_text("Step 2 of about 5")
    expect(page.locator("#snapshot-detail")).to_have_text("repo 1/15: octo/api")
    assert fake.count(steps_path(RUN_ID)) == 1

    for n in range(2, 6):
        fake.send(status_json(PRS, prs_start, detail=f"repo {n}/15: octo/web", done=n, total=15))
        expect(current.locator(".step-detail")).to_have_text(f"repo {n}/15: octo/web")
        expect(page.locator("#snapshot-detail")).to_have_text(f"repo {n}/15: octo/web")
    assert fake.count(steps_path(RUN_ID)) == 1  # five details, no read

    reviews_start = NOW - timedelta(seconds=2)
    fake.answers[steps_path(RUN_ID)] = running_steps(
        step_json("Starting", start, 1.0),
        step_json(PRS, prs_start, 37.0, detail="repo 15/15: octo/web", done=15, total=15),
        step_json("Fetching reviews", reviews_start, None),
    )
    with page.expect_response(f"**{steps_path(RUN_ID)}"):
        fake.send(status_json("Fetching reviews", reviews_start, detail="PR 1/80"))
    expect(page.locator("#live-steps li[aria-current=step] .step-name")).to_have_text("Fetching reviews")
    expect(rows.nth(1).locator(".step-time")).to_have_text("37 s")
    expect(rows.nth(1).locator(".step-detail")).to_have_text("repo 15/15: octo/web")
    expect(rows).to_have_count(5)
    expect(page.locator("#live-steps #steps-summary")).to_have_text("Step 3 of about 5")
    assert fake.count(steps_path(RUN_ID)) == 2
    # The usual durations: read once for the last completed run by the timeline, once by the chart.
    assert fake.count("/api/snapshot/steps") == 2
    assert fake.watched is not None
    fake.watched.assert_clean()


def test_the_bar_and_the_panels_fit_every_width_with_long_names_and_details(
    open_page: OpenPage, axe_source: str
) -> None:
    """A long step name and a long detail in the bar (a second line under the step, whole on hover, tap and
    focus), the timeline and the chart with a long step name: nothing overlaps, nothing leaves the screen, the
    page never scrolls sideways, at 1280, 800 and 390 px; axe finds nothing serious."""
    start = NOW - timedelta(seconds=360)
    fake = fake_service()
    fake.answers[steps_path(RUN_ID)] = running_steps(
        step_json("Starting", start, 1.0),
        step_json(PRS, start + timedelta(seconds=1), 150.0, detail="repo 15/15: octo/web", done=15, total=15),
        step_json("Fetching reviews", start + timedelta(seconds=151), 200.0),
        step_json(LONG_NAME, start + timedelta(seconds=351), None),
    )
    page = fake.open(open_page)
    fake.send(status_json(LONG_NAME, start + timedelta(seconds=351), detail=LONG_DETAIL, done=5, total=15))
    detail = page.locator("#snapshot-detail")
    expect(detail).to_have_text(LONG_DETAIL)
    expect(detail).to_have_attribute("title", LONG_DETAIL)
    expect(page.locator("#snapshot-progress")).to_have_attribute("aria-valuetext", f"40 %, {LONG_NAME} — {LONG_DETAIL}")
    expect(page.locator("#snapshot-eta")).to_have_attribute(
        "title", re.compile(r"^Estimated from the usual durations of the steps left; done about ")
    )
    detail.click()  # a tap shows it whole
    expect(detail).to_have_attribute("data-expanded", "")
    detail.click()
    expect(page.locator("#live-steps li[aria-current=step] .step-detail")).to_have_text(LONG_DETAIL)
    expect(page.locator("#live-steps li.step[data-flag=slow] .step-name")).to_have_text("Fetching reviews")
    expect(page.locator("#chart-svg .chart-row")).to_have_count(len(USUAL))
    problems = panel_problems(page, "running, long names")
    assert problems == [], "\n".join(problems)
    assert run_axe(page) == []
    assert fake.watched is not None
    fake.watched.assert_clean()


def test_the_chart_draws_the_figures_and_has_them_as_a_table(open_page: OpenPage) -> None:
    """The chart: a bar per step, slow steps flagged in words; its accessible name sums it up; its table lists
    every figure; the chart is read again when the last run changes, and never on a timer."""
    fake = fake_service()
    page = fake.open(open_page)
    document = status_json("Starting", NOW)
    idle = {**document, "running": False, "currentRun": None, "eta": None}
    fake.send(idle)
    chart = page.get_by_role("img", name=re.compile(r"^Median duration per step over the last 12 runs\."))
    expect(chart).to_have_attribute("aria-label", re.compile(rf"Longest: {PRS}, 12 min \(68 % of the time\)\."))
    slow = re.compile(r"Slower than usual in the latest run: Fetching reviews\.$")
    expect(chart).to_have_attribute("aria-label", slow)
    expect(page.locator("#chart-svg .chart-row")).to_have_count(len(USUAL))
    expect(page.locator("#chart-svg .chart-row[data-slow] .chart-value")).to_have_text("2 min · slow")
    table = page.locator("#chart-table")
    expect(table).to_be_hidden()
    page.get_by_text("The figures as a table").click()
    expect(table).to_be_visible()
    expect(table.locator("caption")).to_have_text(
        "Median and 90th-percentile duration of each step over the last 12 runs; a whole run: 17 min (median)"
    )
    expect(table.locator("tbody tr")).to_have_count(len(USUAL))
    expect(table.locator("tbody tr").nth(2)).to_have_text(
        re.compile(r"^Fetching reviews\s*2 min\s*2 min 36 s\s*11 %\s*4 min \(slower than usual\)$")
    )
    problems = panel_problems(page, "the chart's table open")
    assert problems == [], "\n".join(problems)
    assert fake.count("/api/snapshot/steps") == 2  # the chart's read, and the timeline's (the usual durations)

    ended = {**idle, "lastRun": {**idle["lastRun"], "runId": RUN_ID}}
    fake.answers[steps_path(RUN_ID)] = {**running_steps(step_json("Starting", NOW, 1.0)), "status": "completed"}
    fake.send(ended)  # a run ended
    until(page, lambda: fake.count("/api/snapshot/steps") == 4, "the figures read again")
    fake.send(ended | {"serverTime": iso(NOW + timedelta(seconds=30))})  # news, but not of a run: no read
    expect(page.locator("#live-steps li.step")).to_have_count(1)
    expect(page.locator("#chart-svg .chart-row")).to_have_count(len(USUAL))
    assert fake.count("/api/snapshot/steps") == 4
    assert fake.watched is not None
    fake.watched.assert_clean()


def test_a_service_with_nothing_to_chart_or_without_steps_says_so(open_page: OpenPage) -> None:
    """No completed run yet: the chart says so without asking. A service that keeps no steps (404): the
    panels say so and the bar works as before."""
    fake = fake_service()
    page = fake.open(open_page)
    document = status_json("Starting", NOW)
    fake.send({**document, "running": False, "currentRun": None, "lastRun": None, "eta": None})
    expect(page.locator("#chart-note")).to_have_text("No completed run with steps yet")
    expect(page.locator("#live-steps #steps-note")).to_have_text("No snapshot has run yet")
    assert fake.count("/api/snapshot/steps") == 0

    older = fake_service()
    older.answers.pop("/api/snapshot/steps")
    page = older.open(open_page)
    older.send(status_json("Starting", NOW))
    expect(page.locator("#chart-note")).to_have_text("This service keeps no step figures")
    expect(page.locator("#live-steps #steps-note")).to_have_text("Steps unavailable: no such path")
    expect(page.locator("#live-steps li[aria-current=step] .step-name")).to_have_text("Starting")  # from the stream
    expect(page.locator("snapshot-bar")).to_have_attribute("state", "running")


# --------------------------------------------------------------------------------- against a real service
STEPS_JOB = job_command(
    "import json, os, sys, time\n"
    "gated = 'wait' in os.environ.get('SNAPSHOT_REASON', '')\n"
    "gate = open(os.environ['TEST_GATE']) if gated else None\n"
    "def report(**fields):\n"
    "    print('PROGRESS ' + json.dumps(fields), flush=True)\n"
    "report(percent=2, step='Connecting to GitHub')\n"
    "time.sleep(0.3)\n"
    "for n, repo in enumerate(['octo/api', 'octo/web', 'octo/docs'], 1):\n"
    "    report(percent=5 + n * 25, step='" + PRS + "', detail=f'repo {n}/3: {repo}', done=n - 1, total=3)\n"
    "    if gate: gate.readline()\n"
    "    else: time.sleep(0.2)\n"
    "report(percent=85, step='Computing review statistics')\n"
    "time.sleep(0.2)\n"
    "report(percent=95, step='Writing snapshot')\n"
    "time.sleep(0.1)\n"
)
"""Four steps reported in the JSON form of PROGRESS, as the sample job has them: the PRs step has a detail and
counts for each of three repositories. With "wait" in its reason it waits at the gate at each repository."""


def steps_service(service_factory: Any, gate: Gate, *args: str) -> ServiceProcess:
    service: ServiceProcess = service_factory(
        "--command", STEPS_JOB, "--interval", "60", *args, env={"TEST_GATE": str(gate.path)}
    )
    return service


def trigger(service: ServiceProcess, reason: str) -> None:
    status, body = service.post_json("/api/snapshot/trigger", {"reason": reason})
    assert status == 202, body


def until(page: Page, condition: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    """Wait for ``condition`` (about another process, so checked again every 50 ms) with a deadline."""
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while not condition():
        assert datetime.now(UTC) < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


def until_completed(page: Page, service: ServiceProcess, count: int) -> None:
    """Wait until the service's history holds ``count`` completed runs."""

    def completed() -> bool:
        runs = service.get_json("/api/snapshot/runs")["runs"]
        return len([run for run in runs if run["status"] == "completed"]) == count

    until(page, completed, f"{count} completed runs")


def test_a_job_reporting_json_progress_drives_the_timeline(
    service_factory: Any, open_page: OpenPage, gate: Gate
) -> None:
    """The running run's timeline, step by step: the steps done with their durations, the current one with its
    detail and counts (in the bar too), the steps to come as the last run had them; then the run completed."""
    service = steps_service(service_factory, gate)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)  # the start-up run is done
    until_completed(page, service, 1)  # the start-up run

    trigger(service, "wait")
    current = page.locator("#live-steps li[aria-current=step]")
    expect(current.locator(".step-name")).to_have_text(PRS)
    expect(current.locator(".step-detail")).to_have_text("repo 1/3: octo/api")
    expect(page.locator("#snapshot-detail")).to_have_text("repo 1/3: octo/api")
    expect(page.locator("#live-steps #steps-title")).to_have_text("Steps of the running snapshot")
    expect(timeline(page).filter(has_text="Connecting to GitHub").locator(".step-time")).to_have_text(
        re.compile(r"^\d+(\.\d)? s$")
    )
    expect(timeline(page).filter(has_text="Writing snapshot")).to_have_attribute("data-state", "todo")
    gate.release()
    expect(current.locator(".step-detail")).to_have_text("repo 2/3: octo/web")
    expect(page.locator("#snapshot-detail")).to_have_text("repo 2/3: octo/web")
    if os.environ.get("SNAPSHOT_SCREENSHOT") == "1":
        page.set_viewport_size({"width": 1000, "height": 400})
        page.screenshot(path=str(SCREENSHOT), animations="disabled")
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    gate.release()
    expect(current.locator(".step-detail")).to_have_text("repo 3/3: octo/docs")
    gate.release()

    expect_idle(page)
    expect(page.locator("#live-steps #steps-title")).to_have_text("Steps of the last snapshot — Completed")
    expect(page.locator("#live-steps li[aria-current]")).to_have_count(0)
    names = [name for state, name in row_texts(page) if state == "done"]
    assert names[-4:] == ["Connecting to GitHub", PRS, "Computing review statistics", "Writing snapshot"], names
    expect(timeline(page).filter(has_text=PRS).locator(".step-detail")).to_have_text("repo 3/3: octo/docs")
    for i in range(timeline(page).count()):
        expect(timeline(page).nth(i).locator(".step-time")).to_have_text(re.compile(r"^(< 0\.1 s|\d+(\.\d)? s)$"))
    expect(page.locator("#snapshot-detail")).to_be_hidden()
    watched.assert_clean()


def test_a_past_runs_timeline_opens_from_the_history(service_factory: Any, open_page: OpenPage, gate: Gate) -> None:
    """A row of the history opens that run's log and, beside it, that run's steps (``run-id``); closing the log
    closes them. The timeline under the bar goes on following the running run meanwhile."""
    service = steps_service(service_factory, gate)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    until_completed(page, service, 1)  # the start-up run
    first = service.get_json("/api/snapshot/runs")["runs"][0]["runId"]
    trigger(service, "wait")
    expect(page.locator("#live-steps li[aria-current=step] .step-name")).to_have_text(PRS)

    history_row(page, 1).locator("button").click()  # the start-up run, under the running one
    run_steps = page.locator("snapshot-steps#run-steps")
    expect(run_steps).to_have_attribute("run-id", first)
    expect(page.locator("#run-steps #steps-title")).to_have_text(re.compile(r"^Steps — Completed, started "))
    expect(page.locator("#run-steps #steps-title")).to_have_attribute("title", f"Run {first}")
    recorded = service.get_json(f"/api/snapshot/runs/{first}/steps")["steps"]
    expect(timeline(page, "#run-steps")).to_have_count(len(recorded))
    assert [state for state, _ in row_texts(page, "#run-steps")] == ["done"] * timeline(page, "#run-steps").count()
    expect(page.locator("#run-steps li[aria-current]")).to_have_count(0)
    expect(page.locator("#live-steps li[aria-current=step] .step-name")).to_have_text(PRS)  # still following
    problems = panel_problems(page, "running, a past run opened")

    history_row(page, 0).locator("button").click()  # the running one: its steps beside its log, live
    expect(run_steps).not_to_have_attribute("run-id", first)
    expect(page.locator("#run-steps li[aria-current=step] .step-detail")).to_have_text("repo 1/3: octo/api")
    gate.release()
    expect(page.locator("#run-steps li[aria-current=step] .step-detail")).to_have_text("repo 2/3: octo/web")
    page.locator("#log-close").click()
    expect(run_steps).to_have_count(0)
    gate.release()
    gate.release()
    expect_idle(page)
    assert problems == [], "\n".join(problems)
    watched.assert_clean()


def test_the_chart_shows_where_the_time_goes_after_a_few_runs(
    service_factory: Any, open_page: OpenPage, gate: Gate, axe_source: str
) -> None:
    """After a few completed runs the chart has a bar per step and the same figures in its table; it is
    redrawn when another run completes. axe finds nothing serious on the page, idle and running with a past
    run opened; nothing overlaps at any width."""
    service = steps_service(service_factory, gate)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    for n in range(2, 4):
        trigger(service, f"run {n}")
        until_completed(page, service, n)
    expect(page.locator("#chart-table caption")).to_contain_text("over the last 3 runs")
    names = [step["name"] for step in service.get_json("/api/snapshot/steps")["steps"]]
    assert {"Connecting to GitHub", PRS, "Computing review statistics", "Writing snapshot"} <= set(names), names
    expect(page.locator("#chart-svg .chart-row")).to_have_count(len(names))
    summary = re.compile(r"^Median duration per step over the last 3 runs\.")
    expect(page.get_by_role("img", name=summary)).to_be_visible()
    page.get_by_text("The figures as a table").click()
    expect(page.locator("#chart-table tbody th")).to_have_text(names)
    problems = {"idle": run_axe(page)}
    layout = panel_problems(page, "idle, the chart's table open")

    trigger(service, "wait")
    expect(page.locator("#live-steps li[aria-current=step] .step-name")).to_have_text(PRS)
    history_row(page, 1).locator("button").click()
    expect(timeline(page, "#run-steps").first).to_be_visible()
    problems["running, a past run opened"] = run_axe(page)
    layout += panel_problems(page, "running, a past run opened")
    for _ in range(3):
        gate.release()
    expect(page.locator("#chart-table caption")).to_contain_text("over the last 4 runs")
    assert {state: found for state, found in problems.items() if found} == {}
    assert layout == [], "\n".join(layout)
    watched.assert_clean()
