"""Telling people: the :class:`Notifier` is a run listener that works out the missed-run checks
(:mod:`orchestrator.core.checks`) and sends each run's news to the webhooks and, for failures, by mail.

Events: ``start`` (a run started), ``success`` (it completed), ``failure`` (it ended ``error`` or ``cancelled``;
the record's ``status`` says which) and ``long`` (a running run passed ``--long-factor`` x its usual duration;
once per run). Webhooks get the events listed in ``--notify-on``; mail goes out for ``failure`` with status
``error`` and for ``long``. Each job has its own notifier: its notifications name it, and a job of the jobs file
may have webhooks and events of its own (``notify-url``, ``notify-on``: :func:`webhooks_for`).

Nothing here blocks the scheduler: a listener call builds the notification and queues it; delivery is in the
outboxes' own tasks. The recent durations that "usual" is made of are the runs held in memory by
:class:`~orchestrator.ops.recent.RecentRuns`; :meth:`Notifier.status_checks` only computes on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.config import MailSettings, Settings, WebhookSettings
from orchestrator.core.checks import (
    USUAL_SAMPLE_RUNS,
    Check,
    CheckKind,
    Thresholds,
    long_since,
    overdue,
    recent_durations,
    run_checks,
    usual_duration,
)
from orchestrator.core.clock import Clock
from orchestrator.core.events import RunStatus, iso
from orchestrator.core.records import DEFAULT_JOB, RunRecord, State
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.schedule import Timing
from orchestrator.jobsfile import JobConfig
from orchestrator.ops.delivery import Backoff
from orchestrator.ops.recent import RecentRuns

if TYPE_CHECKING:  # the mail and webhook rooms (smtplib, hmac) are imported only where they are set up
    from orchestrator.ops.mail import Mailer, SmtpSettings
    from orchestrator.ops.webhook import Webhooks

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 3.0
"""At a service stop, deliveries in flight get this long (all destinations together), then are cancelled."""
INSTANT = timedelta(microseconds=1)
"""The least step of a ``datetime``: "more than X" first holds at X + this."""
USUAL_LOOKBACK = 100
"""Finished runs looked back over to find the last :data:`~orchestrator.core.checks.USUAL_SAMPLE_RUNS` completed
ones."""


class Event(StrEnum):
    START = "start"
    SUCCESS = "success"
    FAILURE = "failure"
    LONG = "long"


class Notifier:
    """The run listener for notifications and checks of the job ``job``; ``state`` and ``schedule`` are the
    runner's, read to know when a run was due; ``publish`` re-sends the status document (a check appeared as time
    passed). ``hooks``: the job's webhooks (default: the service's); ``api``: the path its runs are served
    under, for the links in mails."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        recent: RecentRuns,
        state: Callable[[], State],
        schedule: Timing | None,
        publish: Callable[[], None],
        job: str = DEFAULT_JOB,
        hooks: WebhookSettings | None = None,
        api: str = "/api/snapshot",
    ) -> None:
        self.clock = clock
        self.job = job
        self.service_url = service_url(settings)
        self.api_url = self.service_url + api
        checks = settings.notify.checks
        hooks = settings.notify.webhooks if hooks is None else hooks
        self.thresholds = Thresholds(
            late_grace=timedelta(minutes=checks.late_grace_minutes) if checks.late_grace_minutes else None,
            long_factor=checks.long_factor,
            fast_factor=checks.fast_factor,
        )
        self.events = frozenset(Event(name) for name in hooks.events)
        backoff = Backoff(first=settings.notify.backoff_seconds)
        self.webhooks = _webhooks(hooks, clock, backoff, job) if hooks.urls else None
        self.mailer = _mailer(settings.notify.mail, clock, backoff, job) if settings.notify.mail.host else None
        self._recent = recent
        self._state = state
        self._schedule = schedule
        self._publish = publish
        self._due_of: dict[str, datetime] = {}
        """When the schedule wanted each scheduled run (the current and the last one)."""
        self._final: tuple[str, list[Check]] = ("", [])
        """The last finished run's checks, as they were when it ended."""
        self._long_told: str | None = None
        self._due: datetime | None = None
        self._paused = False
        self._resumed_at: datetime | None = None
        self._rearm = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        for sink in (self.webhooks, self.mailer):
            if sink is not None:
                sink.start()
        self._tasks = [asyncio.create_task(self._watch(), name="notify-checks")]
        for task in self._tasks:
            task.add_done_callback(_died)

    async def stop(self) -> None:
        """After the runner has stopped (its last run's end is queued by then): deliveries get a short grace."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        sinks = [sink.stop(STOP_GRACE_SECONDS) for sink in (self.webhooks, self.mailer) if sink is not None]
        await asyncio.gather(*sinks)

    # --------------------------------------------------------------------------------- listener (loop)
    def run_started(self, event: RunStarted) -> None:
        run = event.run
        state = self._state()
        last = state.last_run
        due = (
            self._schedule.next_run_at(
                last_run_at=last.started_at if last else None, not_before=state.not_before, now=run.started_at
            )
            if self._schedule is not None
            else None
        )
        self._due_of = {k: v for k, v in self._due_of.items() if last is not None and k == last.run_id}
        if due is not None:
            self._due_of[run.run_id] = self._after_resume(due)
        self._rearm.set()
        self._tell(Event.START, run, self._checks_of(run, run.started_at))

    def run_finished(self, event: RunFinished) -> None:
        run = event.run
        checks = self._checks_of(run, run.finished_at or self.clock.now())
        self._final = (run.run_id, checks)
        self._rearm.set()
        self._tell(Event.SUCCESS if run.status is RunStatus.COMPLETED else Event.FAILURE, run, checks)

    # ------------------------------------------------------------------------------------------- status
    def status_checks(
        self, *, now: datetime, due: datetime | None, paused: bool, current: RunRecord | None, last: RunRecord | None
    ) -> list[dict[str, Any]]:
        """The status document's ``checks``: the next run overdue, the running run's and the last run's."""
        if paused != self._paused or due != self._due:
            if self._paused and not paused:
                self._resumed_at = now
            self._paused, self._due = paused, due
            self._rearm.set()
        found: list[Check] = []
        effective_due = None if due is None else self._after_resume(due)
        if late := overdue(effective_due, now, self.thresholds.late_grace, paused=paused, running=current):
            found.append(late)
        if current is not None:
            found += self._checks_of(current, now)
        if last is not None and self._final[0] == last.run_id:
            found += self._final[1]
        return [check.to_json() for check in found]

    def changes_at(self, now: datetime) -> datetime | None:
        """The first moment after ``now`` from which the last :meth:`status_checks` may differ by time alone."""
        return self._next_check(now, long_after=INSTANT, late_after=INSTANT)

    # ------------------------------------------------------------------------------------------ helpers
    def _after_resume(self, due: datetime) -> datetime:
        """A run that fell due while paused is due at the resume, not before: it is not late for the pause."""
        return due if self._resumed_at is None else max(due, self._resumed_at)

    def recent_changed(self) -> None:
        """The recent runs were read from the history: "usual", and so when a check appears, may have moved."""
        self._rearm.set()

    def _durations(self, run_id: str) -> list[float]:
        """The recent completed runs' durations but ``run_id``'s: one more record is read so that leaving it
        out still leaves :data:`~orchestrator.core.checks.USUAL_SAMPLE_RUNS`."""
        records = self._recent.documents(USUAL_SAMPLE_RUNS + 1, within=USUAL_LOOKBACK)
        return recent_durations(records, exclude=run_id)

    def _usual(self, run_id: str) -> float | None:
        return usual_duration(self._durations(run_id), self.thresholds.min_samples)

    def _checks_of(self, run: RunRecord, now: datetime) -> list[Check]:
        durations = self._durations(run.run_id)
        return run_checks(
            run, now=now, due=self._due_of.get(run.run_id), durations=durations, thresholds=self.thresholds
        )

    def _tell(self, event: Event, run: RunRecord, checks: list[Check]) -> None:
        if self.webhooks is not None and event in self.events:
            now = self.clock.now()
            delivery_id = uuid.uuid4().hex
            record = run.to_json()
            record.pop("pid", None)
            document = {
                "event": event.value,
                "job": self.job,
                "run": record,
                "checks": [check.to_json() for check in checks],
                "service": self.service_url,
                "deliveryId": delivery_id,
                "sentAt": iso(now),
            }
            self.webhooks.send(event.value, run.run_id, document, delivery_id=delivery_id, sent_at=int(now.timestamp()))
        mail_worthy = event is Event.LONG or (event is Event.FAILURE and run.status is RunStatus.ERROR)
        if self.mailer is not None and mail_worthy:
            from orchestrator.ops.mail import compose

            self.mailer.send(compose(event.value, run, checks, self.service_url, job=self.job, api_url=self.api_url))

    async def _watch(self) -> None:
        """Sleeps until a check can next appear (the running run turns "long", the next run turns overdue);
        then publishes the status and tells the "long" event. Re-armed by every run and status change."""
        while True:
            self._tell_long()
            self._rearm.clear()
            wake = self._next_check(self.clock.now(), long_after=timedelta(0), late_after=timedelta(milliseconds=1))
            if not await self.clock.wait(self._rearm, wake):
                self._publish()

    def _tell_long(self) -> None:
        current = self._state().current
        if current is None or current.run_id == self._long_told:
            return
        now = self.clock.now()
        long = next((c for c in self._checks_of(current, now) if c.kind is CheckKind.LONG), None)
        if long is not None:
            self._long_told = current.run_id
            log.warning("%s", long.message)
            self._tell(Event.LONG, current, [long])

    def _next_check(self, now: datetime, *, long_after: timedelta, late_after: timedelta) -> datetime | None:
        """When a check can next appear (the run turning "long", the next one overdue), plus ``*_after``."""
        moments: list[datetime] = []
        current = self._state().current
        if current is not None and current.run_id != self._long_told:
            at = long_since(current, self._usual(current.run_id), self.thresholds.long_factor)
            if at is not None:
                moments.append(at + long_after)
        due, grace = self._due, self.thresholds.late_grace
        if due is not None and grace is not None and not self._paused:
            moments.append(self._after_resume(due) + grace + late_after)
        return min((at for at in moments if at > now), default=None)


def _died(task: asyncio.Task[None]) -> None:
    """These tasks end only when cancelled; a bug that ends one stops checks, not runs: say so once."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: checks and notifications are off", task.get_name(), exc_info=task.exception())


def service_url(settings: Settings) -> str:
    """Where people reach the service: ``--public-url``, else the address it listens on."""
    if settings.notify.public_url:
        return settings.notify.public_url.rstrip("/")
    host = settings.http.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http.port}"


def webhooks_for(settings: Settings, job: JobConfig | None) -> WebhookSettings:
    """The webhooks of ``job``: its own ``notify-url`` and ``notify-on`` where the jobs file gives them (an
    empty list: none), else the service's; the secret is the service's."""
    hooks = settings.notify.webhooks
    if job is None:
        return hooks
    urls = hooks.urls if job.notify_urls is None else job.notify_urls
    events = hooks.events if job.notify_on is None else job.notify_on
    return WebhookSettings(urls=urls, events=events, secret=hooks.secret)


def _webhooks(hooks: WebhookSettings, clock: Clock, backoff: Backoff, job: str) -> Webhooks:
    from orchestrator.ops.webhook import Webhooks  # imported where a job has webhooks (hmac)

    return Webhooks(hooks.urls, secret=hooks.secret, clock=clock, backoff=backoff, job=job)


def _mailer(mail: MailSettings, clock: Clock, backoff: Backoff, job: str) -> Mailer:
    from orchestrator.ops.mail import Mailer  # imported where mail is set up (smtplib, email.generator)

    return Mailer(smtp_settings(mail), clock=clock, backoff=backoff, job=job)


def smtp_settings(mail: MailSettings) -> SmtpSettings:
    from orchestrator.ops.mail import Security, SmtpSettings

    assert mail.host is not None
    return SmtpSettings(
        host=mail.host,
        recipients=mail.recipients,
        security=Security(mail.security),
        port=mail.port,
        user=mail.user,
        password=mail.password,
        sender=mail.sender,
    )
