"""The service: one queue, its producers, its one consumer, the progress monitor and the hub, wired up and
started and stopped in one place. Also builds the status document that HTTP and SSE serve."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.config import Settings
from orchestrator.core import eta
from orchestrator.core.clock import Clock, SystemClock
from orchestrator.core.events import Receipt, RunStatus, Source, Trigger, iso, parse_iso
from orchestrator.core.schedule import Schedule, minutes_until
from orchestrator.job.process import Job, SubprocessJob
from orchestrator.live.hub import Hub
from orchestrator.live.monitor import ProgressMonitor
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.ops.estimator import FinishEstimator
from orchestrator.ops.metrics import Metrics
from orchestrator.ops.notify import Notifier
from orchestrator.ops.retention import Retention
from orchestrator.runner.runner import RunListener, Runner
from orchestrator.sources.folder import FolderSource, IntervalTimer
from orchestrator.store import HISTORY_FILE_NAME, open_history
from orchestrator.store.runlogs import RunLogs
from orchestrator.store.statefile import StateStore

log = logging.getLogger(__name__)

SAVE_TIMEOUT_SECONDS = 10.0
"""How long a request waits for its trigger to be saved; the runner saves at once, unless it is gone."""

CLOCK_FIELDS = ("serverTime", "secondsUntilNextRun", "minutesUntilNextRun")
"""Fields that change with time alone; a document that differs only in them is no news."""
ENCODING_FRESH_SECONDS = 0.5
"""How long one encoding of a status event serves every stream that sends it. Long enough for a change to
reach a thousand streams (about 0.1 s), short enough that the clock fields a late sender shows stay right."""


class TriggerNotSaved(Exception):
    """A trigger that could not be put on disk, and so was not taken: its sender must not be told it was."""


class Orchestrator:
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
        self.schedule = Schedule(settings.interval, settings.cooldown)
        self.queue: asyncio.Queue[Trigger] = asyncio.Queue()
        self.hub = Hub()
        self.progress_file = ProgressFile(settings.progress_path)
        self.history = open_history(settings.data_dir / HISTORY_FILE_NAME)
        self.listeners: list[RunListener] = []
        """Told of each run's start and end (notifications, metrics, logs); the runner holds this same list."""
        # Run logs and their retention (issue 4: orchestrator/store/runlogs.py, retention.py).
        self.logs = RunLogs(settings.data_dir, self.clock)
        self.retention = Retention(
            self.history, self.logs, self.clock, keep_runs=settings.keep_runs, keep_days=settings.keep_days
        )
        self.listeners.append(self.retention)
        self.state_store = StateStore(settings.state_path)
        """The runner's store; also saves a pause (orchestrator/http/pause.py) at once."""
        self.estimator = FinishEstimator(self.history, on_change=self.publish)
        self.listeners.append(self.estimator)
        self.runner = Runner(
            queue=self.queue,
            job=job or SubprocessJob(settings.command, kill_grace=settings.kill_grace_seconds),
            clock=self.clock,
            schedule=self.schedule,
            store=self.state_store,
            progress_file=self.progress_file,
            on_change=self._on_runner_change,
            kill_grace=settings.kill_grace_seconds,
            timeout=settings.timeout,
            stall_timeout=settings.stall_timeout,
            history=self.history,
            listeners=self.listeners,
            logs=self.logs,
        )
        self.timer = IntervalTimer(self.queue, self.clock, self._due)
        self.folder = FolderSource(settings.triggers_dir, self.queue, self.clock)
        self.runner.hold_first_run(self.folder.first_look)
        self.monitor = ProgressMonitor(self.progress_file, self._on_progress_file)
        self._tasks: list[asyncio.Task[None]] = []
        self._was_running = False
        self._published: dict[str, Any] = {}
        self._encoded: tuple[int, float, str] | None = None
        """The last status event's data: its version, when it was encoded (monotonic), and the JSON."""
        self._stopping = False
        # Notifications and missed-run checks (issue 4: orchestrator/ops/notify.py).
        self.notifier = Notifier(
            settings,
            clock=self.clock,
            history=self.history,
            state=lambda: self.runner.state,
            schedule=self.schedule,
            publish=self.publish,
        )
        self.listeners.append(self.notifier)
        # Metrics (issue 4): last, so that the state and history it reads at start are all there.
        self.metrics = Metrics(self)
        self.listeners.append(self.metrics)

    # ------------------------------------------------------------------------------------------- control
    async def request_run(self, source: Source, reason: str = "") -> Trigger:
        """Put a trigger on the queue and return it once it is in the state on disk: only then may the
        caller say it was accepted. :class:`TriggerNotSaved` if the state could not be written."""
        trigger = Trigger(source, self.clock.now(), reason, receipt=Receipt())
        assert trigger.receipt is not None
        if self._stopping:
            # A request that was already in flight when the service began to stop: nothing runs any more,
            # but the trigger is saved and runs at the next start.
            self.runner.keep_for_next_start(trigger)
        else:
            await self.queue.put(trigger)
        try:
            async with asyncio.timeout(SAVE_TIMEOUT_SECONDS):
                saved = await trigger.receipt.saved()
        except TimeoutError:
            raise TriggerNotSaved("the service did not take the trigger in time (is it stopping?)") from None
        if not saved:
            raise TriggerNotSaved(f"the state file cannot be written ({self.state_store.last_error or 'unknown'})")
        return trigger

    def cancel(self, reason: str) -> str | None:
        """End the running run as ``cancelled``; its id, or ``None`` if nothing runs."""
        return self.runner.cancel(reason)

    async def start(self) -> None:
        await self.runner.stop_leftover()
        self.monitor.read_now()
        self.publish()
        self.monitor.start()
        self.folder.start()
        self.notifier.start()  # before the runner: it tells a recovered run's end at once
        for name, coro in (
            ("runner", self.runner.serve()),
            ("timer", self.timer.serve()),
            ("trigger-folder", self.folder.serve()),
            ("progress-monitor", self.monitor.serve()),
            ("eta-durations", self.estimator.serve()),
        ):
            self._tasks.append(asyncio.create_task(coro, name=name))
            self._tasks[-1].add_done_callback(self._crashed)
        log.info(
            "every %g min (cooldown %g min after manual runs); job: %s; triggers: %s; data: %s",
            self.settings.interval_minutes,
            self.settings.cooldown_minutes,
            " ".join(self.settings.command),
            self.settings.triggers_dir,
            self.settings.data_dir,
        )

    async def stop(self) -> None:
        """Stop producers first, then the runner (which ends a running job), then the watchers. Called as
        soon as the service is told to stop (before in-flight requests are drained); a second call is a no-op."""
        if self._stopping:
            return
        self._stopping = True
        log.info("stopping: no new runs start from now on; pending triggers are kept for the next start")
        self.runner.stop_starting()
        self.hub.close()
        try:
            for task in reversed(self._tasks):  # monitor, folder, timer, then the runner last
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("background task %s failed", task.get_name())
        finally:
            self._tasks.clear()
            self.folder.stop()
            self.monitor.stop()
            await self.retention.stop()
            await self.logs.stop()  # after the runner: the last run's last lines
            await self.notifier.stop()  # after the runner: its last run's end is queued; a short grace

    # ------------------------------------------------------------------------------------------ schedule
    def next_run_at(self) -> datetime:
        state = self.runner.state
        return self.schedule.next_run_at(
            last_run_at=state.last_run_at, not_before=state.not_before, now=self.clock.now()
        )

    def _due(self) -> tuple[datetime | None, object]:
        """For the timer: nothing is due while a run goes on (its end may start a cooldown), nor while the
        schedule is paused (on resume, a run that fell due meanwhile is due at once)."""
        state = self.runner.state
        inputs = (state.last_run_at, state.not_before, self.runner.running)
        return (None if self.runner.running or state.paused else self.next_run_at()), inputs

    def _on_runner_change(self) -> None:
        self.timer.reschedule()
        if self._was_running and not self.runner.running:
            self.folder.rescan()  # a burst of events may have been dropped while we were busy
        self._was_running = self.runner.running
        self.publish()

    def _on_progress_file(self, progress: Progress) -> None:
        # A job that writes the progress file itself shows signs of life there, not on stdout.
        if progress.status is RunStatus.RUNNING:
            self.runner.saw_file_progress(progress.run_id, progress.progress, progress.step)
        self.publish()

    # ------------------------------------------------------------------------------------------- status
    def publish(self) -> None:
        document = self.status()
        # The clock fields change every call; a document that differs only in them is no news.
        key = {k: v for k, v in document.items() if k not in CLOCK_FIELDS}
        key["eta"] = eta.without_clock(key.get("eta"))  # a clock field one level down: eta.secondsLeft
        if key != self._published:
            self._published = key
            self.hub.publish(document)

    def progress(self) -> Progress:
        """The progress to show: the file's while it describes the run we know of (the job may write it
        itself), else the runner's own, which is ahead of the file for the moment a write takes to land, and
        for as long as writes fail (a full or read-only data folder)."""
        ours = self.runner.progress
        from_file = self.monitor.latest
        if ours.run_id is None:
            return from_file or ours  # nothing ran in this process yet: the file is all we know
        if (
            from_file is not None
            and self.runner.progress_on_disk
            and from_file.run_id in (ours.run_id, None)
            and from_file.status == ours.status
        ):
            return from_file
        return ours

    def with_clock(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with its clock fields as of now: a published state may be old when it is sent (a
        client connecting long after the last change), and a page counts down from these fields."""
        next_run_at = parse_iso(document.get("nextRunAt"))
        if next_run_at is None:
            return document
        now = self.clock.now()
        return {
            **document,
            "minutesUntilNextRun": minutes_until(next_run_at, now),
            "secondsUntilNextRun": max(0.0, round((next_run_at - now).total_seconds(), 1)),
            "eta": eta.with_clock(document.get("eta"), now),
            "serverTime": iso(now),
        }

    def status_event(self, version: int, document: dict[str, Any]) -> str:
        """The JSON of a published status ``document`` (hub ``version``) with its clock fields as of now:
        encoded once for every stream that sends it at about the same time, not once per stream (a change
        reaches every open stream at once, and one encoding of a large document costs about a millisecond)."""
        now = self.clock.monotonic()
        cached = self._encoded
        if cached is not None and cached[0] == version and now - cached[1] < ENCODING_FRESH_SECONDS:
            return cached[2]
        data = json.dumps(self.with_clock(document))
        self._encoded = (version, now, data)
        return data

    def status(self) -> dict[str, Any]:
        """``GET /api/snapshot/status``: the original design's fields first, then what users need beyond."""
        now = self.clock.now()
        state = self.runner.state
        due = self.next_run_at()
        progress = self.progress()
        current = state.current
        return {
            "running": current is not None,
            "lastRunAt": iso(state.last_run_at),
            "nextRunAt": iso(due),
            "intervalMinutes": _tidy(self.settings.interval_minutes),
            "minutesUntilNextRun": minutes_until(due, now),
            "progress": {
                "status": progress.status.value,
                "step": progress.step,
                "progress": progress.to_json()["progress"],
            },
            "secondsUntilNextRun": max(0.0, round((due - now).total_seconds(), 1)),
            "cooldownMinutes": _tidy(self.settings.cooldown_minutes),
            "cooldownUntil": iso(state.not_before) if state.not_before and state.not_before > now else None,
            "queued": state.pending_count > 0,
            "pendingTriggers": state.pending_count,
            "currentRun": current.to_brief_json() if current else None,
            "stopping": stopping.reason if (stopping := self.runner.stopping) else None,
            "lastRun": state.last_run.to_brief_json() if state.last_run else None,
            # Pause and ETA (issue 4, orchestrator/http/pause.py and estimator.py):
            "paused": state.paused.to_json() if state.paused else None,
            "eta": self.estimator.status_field(current, progress, now),
            # Missed-run checks (issue 4, orchestrator/ops/notify.py and checks.py):
            "checks": self.notifier.status_checks(
                now=now, due=due, paused=state.paused is not None, current=current, last=state.last_run
            ),
            "serverTime": iso(now),
        }

    def _crashed(self, task: asyncio.Task[None]) -> None:
        """A background task that ends by itself is a bug; a half-working service would be worse than none,
        so the service stops (and the CLI exits non-zero, for systemd to restart it)."""
        if task.cancelled():
            return
        log.critical("background task %s died; stopping the service", task.get_name(), exc_info=task.exception())
        self.failed = True
        self._on_fatal()


def _tidy(minutes: float) -> float | int:
    return int(minutes) if float(minutes).is_integer() else minutes
