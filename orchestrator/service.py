"""The composition root: builds the service's parts (the run history and logs, their retention, the one job's
unit, notifications, metrics), starts them in one exit stack, and stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.config import Settings
from orchestrator.core.clock import Clock, SystemClock
from orchestrator.core.events import Source, Trigger
from orchestrator.job.protocol import Job
from orchestrator.jobsfile.spec import JobSpec
from orchestrator.live import status as documents
from orchestrator.live.hub import Hub
from orchestrator.live.progress import ProgressFile
from orchestrator.ops.estimator import FinishEstimator
from orchestrator.ops.metrics import Metrics
from orchestrator.ops.notify import Notifier
from orchestrator.ops.retention import Retention
from orchestrator.runner import RunListener, Runner
from orchestrator.sources.watchhub import WatchHub
from orchestrator.store import HISTORY_FILE_NAME, StateStore, open_history
from orchestrator.store.runlogs import RunLogs
from orchestrator.unit import JobUnit

log = logging.getLogger(__name__)


class Orchestrator:
    """The service: one job's unit and what serves every job (history, logs, retention, notifications,
    metrics). ``on_fatal`` is called when a background task dies (the CLI then stops the process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        job: Job | None = None,
        on_fatal: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.failed = False
        self._on_fatal = on_fatal
        self.clock = clock or SystemClock()
        self.history = open_history(settings.store.data_dir / HISTORY_FILE_NAME)
        self.logs = RunLogs(settings.store.data_dir, self.clock)
        self.retention = Retention(
            self.history, self.logs, self.clock, keep_runs=settings.store.keep_runs, keep_days=settings.store.keep_days
        )
        self.watches = WatchHub()
        """Every folder watch of the service (the triggers folder, the progress file, their parents), sharing
        one observer per folder however many jobs watch it."""
        self.listeners: list[RunListener] = [self.retention]
        """Told of each run's start and end (retention, recent runs, notifications, metrics), in this order; the
        runner holds this same list."""
        self.unit = JobUnit(
            JobSpec.from_settings(settings),
            clock=self.clock,
            job=job,
            history=self.history,
            logs=self.logs,
            listeners=self.listeners,
            watches=self.watches,
        )
        self.notifier = Notifier(
            settings,
            clock=self.clock,
            recent=self.unit.recent,
            state=lambda: self.unit.state,
            schedule=self.unit.schedule,
            publish=self.unit.publish,
        )
        self.unit.checks = self.notifier
        self.unit.recent.watch(self.notifier.recent_changed)
        self.retention.on_pruned(self.unit.recent.forget)
        self.listeners.append(self.notifier)
        # Last, so that the state and history it reads at start are all there.
        self.metrics = Metrics(self.unit, self.history, interval_seconds=settings.job.interval_minutes * 60)
        self.listeners.append(self.metrics)
        self._stack = contextlib.AsyncExitStack()
        # Stopped last, whether the rest started or not: after the runner, each has the last run's end to tell.
        self._stack.push_async_callback(self.notifier.stop)  # its last run's end is queued; a short grace
        self._stack.push_async_callback(self.logs.stop)  # the last run's last lines
        self._stack.push_async_callback(self.retention.stop)
        # Before those three, after everything the start adds: the watches are stopped by then, and this stops
        # what a failed start left subscribed.
        self._stack.callback(self.watches.stop)
        self._stopping = False

    async def start(self) -> None:
        await self.unit.open(self._stack)
        self.notifier.start()  # before the runner: it tells a recovered run's end at once
        self.unit.serve(self._stack, self._crashed)
        log.info(
            "every %g min (cooldown %g min after manual runs); job: %s; triggers: %s; data: %s",
            self.settings.job.interval_minutes,
            self.settings.job.cooldown_minutes,
            " ".join(self.settings.job.command),
            self.settings.job.triggers_dir,
            self.settings.store.data_dir,
        )

    async def stop(self) -> None:
        """Stop producers first, then the runner (which ends a running job), then the watchers. Called as
        soon as the service is told to stop (before in-flight requests are drained); a second call is a no-op."""
        if self._stopping:
            return
        self._stopping = True
        log.info("stopping: no new runs start from now on; pending triggers are kept for the next start")
        self.unit.close_intake()
        await self._stack.aclose()  # the unit's tasks (the runner last), its watches, then the three above

    def _crashed(self, task: asyncio.Task[None]) -> None:
        """A background task that ends by itself is a bug; a half-working service would be worse than none,
        so the service stops (and the CLI exits non-zero, for systemd to restart it)."""
        if task.cancelled():
            return
        log.critical("background task %s died; stopping the service", task.get_name(), exc_info=task.exception())
        self.failed = True
        self._on_fatal()

    # ------------------------------------------------------------------------- what the HTTP room sees
    @property
    def view(self) -> JobUnit:
        """The job's read-only status view (orchestrator/http/ports.py ``StatusView``)."""
        return self.unit

    @property
    def commands(self) -> JobUnit:
        """The job's commands (orchestrator/http/ports.py ``Commands``)."""
        return self.unit

    @property
    def job_name(self) -> str:
        """The job's name (orchestrator/http/ports.py ``Served``)."""
        return self.unit.spec.name

    # ------------------------------------------------------------- the one job, by its parts' names
    @property
    def runner(self) -> Runner:
        return self.unit.runner

    @property
    def hub(self) -> Hub:
        return self.unit.hub

    @property
    def queue(self) -> asyncio.Queue[Trigger]:
        return self.unit.queue

    @property
    def estimator(self) -> FinishEstimator:
        return self.unit.estimator

    @property
    def state_store(self) -> StateStore:
        return self.unit.state_store

    @property
    def progress_file(self) -> ProgressFile:
        return self.unit.progress_file

    async def request_run(self, source: Source, reason: str = "") -> Trigger:
        return await self.unit.request_run(source, reason)

    def cancel(self, reason: str) -> str | None:
        return self.unit.cancel(reason)

    def status(self) -> dict[str, Any]:
        return self.unit.status()

    def publish(self) -> None:
        self.unit.publish()

    def next_run_at(self) -> datetime:
        return self.unit.next_run_at()

    def with_clock(self, document: dict[str, Any]) -> dict[str, Any]:
        return documents.with_clock(document, self.clock.now())
