"""Our page for a service of several jobs (a jobs file), in a real headless Chromium against a real service
process started with ``--jobs``: the default job's bar as ever, a compact bar for each other job (its name, its
next run or how it runs, its progress, Run Now), one event stream for all of them, and the history of every job
with a job column and a filter.

The jobs file has three jobs: ``snapshot`` (the default, every 60 minutes, waiting at a gate when its reason
says "wait"), ``nightly`` (a calendar schedule) and ``report`` (no schedule: it runs after each snapshot), and
at most one run at a time, so a second job's run waits for the slot.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, Request, Route, expect

from tests.support import REPO, ServiceProcess, sample_command
from tests.web.axe import run_axe
from tests.web.browsing import Gate, OpenPage, Watched, expect_idle, layout_problems
from tests.web.test_browser import FAKE_EVENT_SOURCE, GATED_JOB, _status_document

pytestmark = pytest.mark.browser

NEXT_RUN = re.compile(r"^Next run (in \d+ minutes?|in less than a minute|at .+|on .+)$")
"""A calendar job's next run: counted down in its last hour, else the time it comes at."""
REPORT_IDLE = re.compile(r"^Runs (on triggers|after snapshot)$")
"""The report job has no schedule of its own: the bar says how it runs (with whom it follows when the status
document names them)."""


def jobs_toml(gate: Gate, *, extra: str = "") -> str:
    return f"""
default-job = "snapshot"
max-parallel = 1

[jobs.snapshot]
command = {json.dumps(GATED_JOB)}
interval = 60
env = {{ TEST_GATE = {json.dumps(str(gate.path))} }}

[jobs.nightly]
command = {json.dumps(sample_command(0.3))}
cron = "30 2 * * *"
timezone = "UTC"

[jobs.report]
command = {json.dumps(sample_command(0.3))}
after = ["snapshot"]
{extra}"""


def several_jobs(service_factory: Any, gate: Gate, tmp_path: Path) -> tuple[ServiceProcess, Path]:
    path = tmp_path / "jobs.toml"
    path.write_text(jobs_toml(gate))
    service: ServiceProcess = service_factory("--jobs", str(path))
    return service, path


def compact(page: Page, job: str) -> Locator:
    """The compact bar of ``job`` in the page's list of other jobs."""
    return page.locator(f'#job-list > li[data-job="{job}"] > snapshot-bar')


def top_bar(page: Page) -> Locator:
    return page.locator(".top snapshot-bar")


@dataclass
class Recorded:
    """The page, and what it asked of the service from its start: the event streams it opened (paths and
    queries) and every API request (``METHOD path?query``)."""

    watched: Watched
    streams: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def page(self) -> Page:
        return self.watched.page


def open_recorded(open_page: OpenPage, url: str, **options: Any) -> Recorded:
    streams: list[str] = []
    requests: list[str] = []

    def note(request: Request) -> None:
        parts = urlsplit(request.url)
        said = parts.path + (f"?{parts.query}" if parts.query else "")
        if request.resource_type == "eventsource":
            streams.append(said)
        elif parts.path.startswith("/api/"):
            requests.append(f"{request.method} {said}")

    watched = open_page(url, before=lambda page: page.on("request", note), **options)
    return Recorded(watched, streams, requests)


def until_event_streams(page: Page, service: ServiceProcess, count: int) -> None:
    """Wait until the service counts ``count`` open event streams (its /health): another process, so polled,
    with a deadline."""
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while (seen := _event_streams(service)) != count:
        assert datetime.now(UTC) < deadline, (seen, count)
        page.wait_for_timeout(50)


def _event_streams(service: ServiceProcess) -> int:
    with urllib.request.urlopen(service.url + "/health", timeout=10) as response:
        return int(json.load(response)["sseClients"])


def trigger(service: ServiceProcess, job: str, reason: str) -> None:
    status, body = service.post_json(f"/api/jobs/{job}/trigger", {"reason": reason})
    assert status == 202, body


def row_jobs(page: Page) -> list[str]:
    rows = page.locator("#history-rows tr")
    return [rows.nth(i).get_attribute("data-job") or "" for i in range(rows.count())]


# ------------------------------------------------------------------------------------------------------ tests
def test_the_default_bar_and_a_compact_entry_per_other_job_on_one_stream(
    service_factory: Any, open_page: OpenPage, gate: Gate, tmp_path: Path
) -> None:
    service, _ = several_jobs(service_factory, gate, tmp_path)
    recorded = open_recorded(open_page, service.url + "/")
    page = recorded.page

    expect_idle(page)  # the default job's bar, as on a service of one job
    expect(top_bar(page).locator("#snapshot-job")).to_be_hidden()
    expect(page.locator("#job-list > li")).to_have_count(2)
    assert [page.locator("#job-list > li").nth(i).get_attribute("data-job") for i in range(2)] == ["nightly", "report"]

    nightly = compact(page, "nightly")
    expect(nightly).to_have_attribute("compact", "")
    expect(nightly.locator("#snapshot-job")).to_have_text("nightly")
    expect(nightly.locator("#snapshot-status")).to_have_text(NEXT_RUN)
    expect(nightly.locator("#snapshot-status")).to_have_attribute(
        "title", re.compile(r"\(cron '30 2 \* \* \*' in UTC\)$")
    )
    expect(nightly.locator("#snapshot-last")).to_have_text("No run yet")
    expect(nightly.locator("#run-now")).to_be_enabled()
    expect(nightly.locator("#run-now")).to_have_accessible_name("Run Now: nightly")

    report = compact(page, "report")
    expect(report.locator("#snapshot-status")).to_have_text(REPORT_IDLE)
    expect(report.locator("#snapshot-last")).to_contain_text("Completed")  # it ran after the start-up snapshot
    expect(report.locator("#snapshot-last")).to_contain_text("after")
    expect(report.locator("[role=region]")).to_have_accessible_name("Job report")

    # One event stream for every job of the page: the browser opened one, the service counts one.
    until_event_streams(page, service, 1)
    assert recorded.streams == ["/api/events"], recorded.streams
    assert recorded.requests.count("GET /api/jobs") == 1, recorded.requests  # the jobs, read once
    recorded.watched.assert_clean()


def test_run_now_on_a_compact_entry_starts_that_job_and_the_history_names_and_filters_the_jobs(
    service_factory: Any, open_page: OpenPage, gate: Gate, tmp_path: Path
) -> None:
    service, _ = several_jobs(service_factory, gate, tmp_path)
    recorded = open_recorded(open_page, service.url + "/")
    page, made = recorded.page, recorded.requests
    expect_idle(page)
    nightly = compact(page, "nightly")

    nightly.locator("#run-now").click()
    expect(nightly.locator("#snapshot-last")).to_contain_text("manual", timeout=15_000)
    assert any(m.startswith("POST /api/jobs/nightly/trigger") for m in made), made
    status = service.get_json("/api/jobs/nightly/status")
    last = status["lastRun"]
    assert (status["job"], last["trigger"], last["status"]) == ("nightly", "http", "completed")
    assert service.get_json("/api/snapshot/status")["lastRun"]["trigger"] == "startup"  # the default job did not run

    # The history: every job's runs, with a column that names the job.
    history = page.locator("snapshot-history")
    expect(history.locator("#history-title")).to_have_text("Recent runs")
    expect(history.locator("th.history-job")).to_be_visible()
    rows = page.locator("#history-rows tr")
    expect(rows).to_have_count(3)
    assert sorted(row_jobs(page)) == ["nightly", "report", "snapshot"]
    for i in range(3):
        expect(rows.nth(i).locator("td.history-job")).to_have_text(rows.nth(i).get_attribute("data-job") or "?")

    # The filter: all jobs, then each by name; one job's runs are read from /api/runs?job=.
    select = page.locator("#history-job")
    expect(select.locator("option")).to_have_text(["All jobs", "snapshot", "nightly", "report"])
    select.select_option("report")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job", "report")
    expect(rows.first.locator("td.history-trigger")).to_have_text("after")
    assert any(m.startswith("GET /api/runs?") and "job=report" in m for m in made), made

    # A run of another job opens its log and its steps from that job's API.
    rows.first.locator("button").click()
    expect(page.locator("#log-state")).to_have_text(re.compile(r"^Completed after "))
    expect(page.locator("snapshot-log")).to_have_attribute("job", "report")
    expect(page.locator("snapshot-steps#run-steps")).to_have_attribute("job", "report")
    run_id = rows.first.get_attribute("data-run-id")
    assert any(m.startswith(f"GET /api/jobs/report/runs/{run_id}/log") for m in made), made

    select.select_option("")
    expect(rows).to_have_count(3)
    recorded.watched.assert_clean()


def test_a_job_waiting_for_a_slot_says_so_and_the_page_fits_every_width(
    service_factory: Any, open_page: OpenPage, gate: Gate, tmp_path: Path, axe_source: str
) -> None:
    """max-parallel is 1: while the snapshot runs, nightly's run waits for the slot, then runs. At 1280, 800
    and 390 px the page never scrolls sideways and no bar's pieces overlap or leave the screen."""
    service, _ = several_jobs(service_factory, gate, tmp_path)
    watched = open_page(service.url + "/")
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    expect_idle(page)
    expect(compact(page, "report").locator("#snapshot-last")).to_contain_text("Completed")
    problems = layout_problems(page, "several jobs, idle", shots_prefix="jobs-")

    trigger(service, "snapshot", "wait at the gate")
    expect(top_bar(page)).to_have_attribute("state", "running")
    nightly = compact(page, "nightly")
    nightly.locator("#run-now").click()
    expect(nightly.locator("#snapshot-status")).to_have_text("Waiting for a slot")
    expect(nightly.locator("#snapshot-queued")).to_be_hidden()
    problems += layout_problems(page, "several jobs, one running, one waiting", shots_prefix="jobs-")
    assert run_axe(page) == [], "one running, one waiting"

    gate.release()
    expect(nightly.locator("#snapshot-last")).to_contain_text("manual", timeout=15_000)
    expect(nightly.locator("#snapshot-status")).to_have_text(NEXT_RUN)
    expect_idle(page)
    problems += layout_problems(page, "several jobs, after the runs", shots_prefix="jobs-")
    assert run_axe(page) == [], "idle"
    assert problems == [], "\n".join(problems)
    watched.assert_clean()


def test_a_job_added_by_a_reload_gets_its_entry(
    service_factory: Any, open_page: OpenPage, gate: Gate, tmp_path: Path
) -> None:
    service, path = several_jobs(service_factory, gate, tmp_path)
    watched = open_page(service.url + "/")
    page = watched.page
    expect_idle(page)
    expect(page.locator("#job-list > li")).to_have_count(2)

    path.write_text(jobs_toml(gate, extra=f"\n[jobs.backup]\ncommand = {json.dumps(sample_command(0.2))}\n"))
    status, body = service.post_json("/api/reload")
    assert status == 200, body
    backup = compact(page, "backup")
    expect(backup.locator("#snapshot-job")).to_have_text("backup")
    expect(backup.locator("#snapshot-status")).to_have_text("Runs on triggers")
    expect(page.locator("#job-list > li")).to_have_count(3)
    expect(page.locator("#history-job option")).to_have_text(["All jobs", "snapshot", "nightly", "report", "backup"])
    until_event_streams(page, service, 1)  # still one stream
    watched.assert_clean()


def test_a_jobs_file_of_one_job_shows_the_page_as_ever(
    service_factory: Any, open_page: OpenPage, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(f"[jobs.snapshot]\ncommand = {json.dumps(sample_command(0.2))}\ninterval = 60\n")
    service: ServiceProcess = service_factory("--jobs", str(path))
    recorded = open_recorded(open_page, service.url + "/")
    page = recorded.page
    expect_idle(page)
    expect(page.locator("#history-rows tr")).to_have_count(1)
    expect(page.locator("#jobs")).to_be_hidden()
    expect(page.locator("#history-title")).to_have_text("Recent snapshots")
    expect(page.locator("th.history-job")).to_be_hidden()
    expect(page.locator("#history-filter")).to_be_hidden()
    expect(page.locator("td.history-job")).to_have_count(0)
    until_event_streams(page, service, 1)
    assert recorded.streams == ["/api/events"], recorded.streams
    recorded.watched.assert_clean()


def test_a_service_from_before_several_jobs_gets_the_stream_of_its_one_job(open_page: OpenPage) -> None:
    """GET /api/jobs answers 404 (a service that predates several jobs): the page opens the default job's own
    stream, and shows its one job as ever. The service is faked (the real page's files at a made-up origin)."""
    web = (REPO / "web").resolve()
    asked: list[str] = []

    def serve(route: Route) -> None:
        path = urlsplit(route.request.url).path
        file = (web / (path.lstrip("/") or "index.html")).resolve()
        if not path.startswith("/api/") and file.is_relative_to(web) and file.is_file():
            route.fulfill(path=file, content_type="text/javascript" if file.suffix == ".js" else None)
            return
        asked.append(path)
        if path == "/api/snapshot/runs":
            route.fulfill(json={"runs": [], "nextCursor": None})
        else:
            route.fulfill(status=404, json={"success": False, "message": "no such path"})

    watched = open_page(
        "http://snapshot.test/",
        init_script=FAKE_EVENT_SOURCE,
        before=lambda page: page.route("http://snapshot.test/**", serve),
    )
    page = watched.page
    page.wait_for_function("() => window.__stream && window.__stream.readyState === 1")
    assert page.evaluate("new URL(window.__stream.url).pathname") == "/api/snapshot/events"
    now = datetime.now(UTC)
    page.evaluate("data => window.__stream.send(data)", json.dumps(_status_document(now, now + timedelta(minutes=60))))
    expect_idle(page)
    expect(page.locator("#jobs")).to_be_hidden()
    expect(page.locator("#history-title")).to_have_text("Recent snapshots")
    assert asked[0] == "/api/jobs", asked
    watched.assert_no_page_errors()  # the 404 itself is a console error
    assert watched.console_errors == ["Failed to load resource: the server responded with a status of 404 (Not Found)"]
