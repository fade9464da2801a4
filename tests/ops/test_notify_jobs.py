"""Notifications of several jobs, for real: a service process with a jobs file, local webhook receivers and an
SMTP server; each job's notifications name it, and go where its own ``notify-url`` and ``notify-on`` say. Then
the choice of webhooks and the mail's words alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from orchestrator.config import NotifySettings, Settings, WebhookSettings
from orchestrator.core.events import RunStatus, Source, Trigger, utcnow
from orchestrator.core.records import RunRecord
from orchestrator.jobsfile import JobConfig
from orchestrator.ops.mail import compose
from orchestrator.ops.notify import webhooks_for
from orchestrator.sources.trigger_files import write_trigger_file
from tests.ops.conftest import Hit, Receiver
from tests.ops.test_mail import PASSWORD, USER, Mailbox, authenticate, smtp_flags
from tests.support import PYTHON, ServiceProcess, free_port, saved_state

SCRIPT = (
    "import os, sys\n"
    "print('PROGRESS 40 Copying files', flush=True)\n"
    "if 'fail' in os.environ.get('SNAPSHOT_REASON', ''): print('disk full', file=sys.stderr); sys.exit(4)\n"
)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a loopback port that wants the mail tests' login (tests/ops/test_mail.py)."""
    mailbox, port = Mailbox(), free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_required=True, auth_require_tls=False
    )
    controller.start()
    yield mailbox, port
    controller.stop()


def jobs_file(root: Path, shared: str, own: str) -> Path:
    """Three jobs that run the mail tests' job: ``snapshot`` (the default, every 600 minutes) with the defaults'
    webhook ``shared``; ``report`` with its own ``own``, for failures only; ``quiet`` with none."""
    command = json.dumps([PYTHON, "-c", SCRIPT])
    path = root / "jobs.toml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "max-parallel = 1\n"
        f"[defaults]\ncommand = {command}\nnotify-url = [{json.dumps(shared)}]\n"
        "[jobs.snapshot]\ninterval = 600\n"
        f'[jobs.report]\nnotify-url = [{json.dumps(own)}]\nnotify-on = ["failure"]\n'
        "[jobs.quiet]\nnotify-url = []\n"
    )
    return path


async def hits_until(receiver: Receiver, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every notification ``receiver`` gets, up to the first that satisfies ``predicate`` (bounded)."""
    seen: list[dict[str, Any]] = []
    while not seen or not predicate(seen[-1]):
        hit: Hit = await receiver.next(timeout=30)
        seen.append(hit.json())
    return seen


@pytest.mark.process
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_each_jobs_notifications_name_it_and_go_where_its_own_settings_say(
    tmp_path: Path,
    service_factory: Callable[..., ServiceProcess],
    receivers: Callable[..., Any],
    smtp: tuple[Mailbox, int],
) -> None:
    shared, own = await receivers(), await receivers()
    mailbox, port = smtp
    path = jobs_file(tmp_path, shared.url, own.url)
    env = {"SNAPSHOT_SMTP_USER": USER, "SNAPSHOT_SMTP_PASSWORD": PASSWORD}
    service = await asyncio.to_thread(service_factory, "--jobs", str(path), *smtp_flags(port), env=env)
    # The default job's start-up run: its start and success, named, at the defaults' webhook.
    startup = await hits_until(shared, lambda hit: hit["event"] == "success")
    assert [(hit["event"], hit["job"], hit["run"]["job"]) for hit in startup] == [
        ("start", "snapshot", "snapshot"),
        ("success", "snapshot", "snapshot"),
    ]
    # One run at a time (max-parallel = 1), in the order of the triggers: quiet's, then report's.
    write_trigger_file(service.triggers_dir / "quiet", "all good", utcnow())
    write_trigger_file(service.triggers_dir / "report", "please fail", utcnow())
    failure = (await own.next(timeout=30)).json()
    assert (failure["event"], failure["job"], failure["run"]["status"]) == ("failure", "report", "error")
    [mail] = await asyncio.to_thread(mailbox.wait, 1)
    run_id = failure["run"]["runId"]
    assert str(mail.message["Subject"]) == f"[report] run {run_id} failed: exited with code 4: disk full"
    body = mail.message.get_content().replace("\r\n", "\n")
    assert body.startswith(f"Job report: run {run_id} ended error: exited with code 4: disk full\n")
    assert "Job:       report\n" in body
    assert f"Log:       {service.url}/api/jobs/report/runs/{run_id}/log\n" in body

    # The default job's next run, and nothing of quiet's or report's at the defaults' webhook meanwhile.
    status, _ = await asyncio.to_thread(service.post_json, "/api/snapshot/trigger", {"reason": "again"})
    assert status == 202
    later = await hits_until(shared, lambda hit: hit["event"] == "success")
    assert {hit["job"] for hit in later} == {"snapshot"}
    assert saved_state(service.data_dir, "quiet")["lastRun"]["status"] == "completed", "quiet did run"
    assert own.hits.empty(), "report's start and success are not among its events"
    assert len(mailbox.mails) == 1


@pytest.mark.parametrize(
    ("urls", "events", "expected"),
    [
        (None, None, (("https://a.example/h",), ("start", "failure"))),  # the service's own
        ((), None, ((), ("start", "failure"))),  # an empty list: none
        (("https://b.example/h",), ("long",), (("https://b.example/h",), ("long",))),
    ],
)
def test_a_jobs_webhooks_are_its_own_where_it_says_them(
    urls: tuple[str, ...] | None, events: tuple[str, ...] | None, expected: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    hooks = WebhookSettings(urls=("https://a.example/h",), events=("start", "failure"), secret="s3cret-s3cret")
    settings = Settings(notify=NotifySettings(webhooks=hooks))
    job = JobConfig("report", ("true",), notify_urls=urls, notify_on=events)
    chosen = webhooks_for(settings, job)
    assert (chosen.urls, chosen.events, chosen.secret) == (*expected, "s3cret-s3cret")
    assert webhooks_for(settings, None) == hooks


def test_a_mail_names_its_job_and_links_to_the_jobs_runs() -> None:
    start = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
    run = RunRecord(
        "20260120T100000Z-3fa9c1",
        (Trigger(Source.AFTER, start, "after snapshot 20260120T090000Z-000000"),),
        start,
        status=RunStatus.ERROR,
        finished_at=start,
        error="exited with code 2",
        job="report",
    )
    mail = compose("failure", run, [], "http://h:1", job="report", api_url="http://h:1/api/jobs/report")
    assert mail.subject == f"[report] run {run.run_id} failed: exited with code 2"
    assert mail.body.startswith(f"Job report: run {run.run_id} ended error: exited with code 2\n\nJob:       report\n")
    assert f"Run:       http://h:1/api/jobs/report/runs/{run.run_id}\n" in mail.body
    default = compose("failure", run, [], "http://h:1")
    assert default.subject.startswith("[snapshot] run ") and default.body.startswith("Snapshot run ")
    assert f"Log:       http://h:1/api/snapshot/runs/{run.run_id}/log\n" in default.body
