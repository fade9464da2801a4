"""The one consumer of the trigger queue. It alone decides what runs: one run at a time, and every trigger
that arrives during a run folded into exactly one follow-up run that starts when the current one ends."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from orchestrator.core.clock import Clock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import MAX_RECORDED_TRIGGERS, RunRecord
from orchestrator.core.schedule import Schedule
from orchestrator.disk.atomic import InvalidDocument
from orchestrator.job.process import Job, JobResult, RunContext, ignore_output, outlast_cancel, stop_leftover
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.store import NO_HISTORY, RunHistory, StoreUnavailable
from orchestrator.store.runlogs import RunLogs
from orchestrator.store.statefile import StateStore

log = logging.getLogger(__name__)

STARTING = "Starting..."
INTERRUPTED = "interrupted: service stopped"
MAX_REMEMBERED_REPORTS = 4096
HISTORY_RETRY = timedelta(seconds=30)
"""How often records the history could not take are tried again while no other record comes."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the runner is ending a run that has not ended by itself."""

    status: RunStatus
    reason: str
    detail: str = ""


class RunListener(Protocol):
    """Told of every run's start and end (history-like consumers: notifications, metrics, logs). Called on
    the event loop, in the runner's own turn: it must return at once and do any slow work in a task."""

    def run_started(self, run: RunRecord) -> None: ...

    def run_finished(self, run: RunRecord) -> None: ...


class Runner:
    """Takes :class:`Trigger` s off ``queue`` and runs ``job``; owns the persisted :class:`State`."""

    def __init__(
        self,
        *,
        queue: asyncio.Queue[Trigger],
        job: Job,
        clock: Clock,
        schedule: Schedule,
        store: StateStore,
        progress_file: ProgressFile,
        on_change: Callable[[], None] = lambda: None,
        kill_grace: float = 10.0,
        timeout: timedelta | None = None,
        stall_timeout: timedelta | None = None,
        history: RunHistory = NO_HISTORY,
        listeners: Sequence[RunListener] = (),
        logs: RunLogs | None = None,
    ) -> None:
        self._queue = queue
        self._job = job
        self._clock = clock
        self._schedule = schedule
        self._store = store
        self._progress_file = progress_file
        self._on_change = on_change
        self._work = asyncio.Event()
        self._progress = Progress()
        self._progress_dirty = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._progress_failing = False
        self._stopping = False
        self._kill_grace = kill_grace
        self._timeout = timeout
        self._history = history
        self._history_failing = False
        self._history_behind = asyncio.Event()
        """Set while the history holds records it could not write: the catch-up task retries them."""
        self._listeners = listeners
        """Kept by reference: the service adds its listeners to the same list after the runner is made."""
        self._logs = logs
        """Each run's output lines go to its log file (opened at the start, closed with the outcome)."""
        self.triggers_received: collections.Counter[Source] = collections.Counter()
        """Every trigger taken, by source (for the metrics): each passes :meth:`_take` exactly once."""
        self._stall_timeout = stall_timeout
        self._stop_request: Stop | None = None
        self._watch = asyncio.Event()
        """Wakes the supervisor of the running run: it ended, was cancelled, or made progress."""
        self._seen_progress: tuple[float, str] | None = None
        self._reported: set[tuple[float, str]] = set()
        """Every (percent, step) of the running run already seen, to tell echoes in the file from news."""
        # Durations on the monotonic clock: an NTP step or a resumed VM must not end a run early.
        self._started_mono = 0.0
        self._last_progress_mono = 0.0
        self._first_run_gate = asyncio.Event()
        self._first_run_gate.set()
        self._recovered: RunRecord | None = None
        """A run the previous service died in, recorded as an error: listeners hear of it once we serve."""
        self.state = store.load()
        last = self.state.last_run
        manual_end = last.finished_at if last is not None and last.is_manual else None
        self.state = replace(
            self.state, not_before=schedule.cooldown_after_restart(self.state.not_before, manual_end=manual_end)
        )
        self._recover()

    # ----------------------------------------------------------------------------------------- lifecycle
    async def serve(self) -> None:
        """Run until cancelled. Cancelling stops a running job and records it as ``cancelled``."""
        await self.stop_leftover()
        recovered, self._recovered = self._recovered, None
        if recovered is not None:
            self._tell("run_finished", recovered)
        if self.state.pending_count:
            self._work.set()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._intake(), name="runner-intake")
                tasks.create_task(self._write_progress_forever(), name="runner-progress-writer")
                tasks.create_task(self._work_loop(), name="runner-work")
                tasks.create_task(self._catch_up_history_forever(), name="runner-history-catch-up")
        finally:
            # A trigger accepted by a source in the last instant is on the queue only: keep it for next time.
            left = []
            while not self._queue.empty():
                left.append(self._queue.get_nowait())
            if left:
                self._take(left)
            elif self.state.pending_count:
                self._save()
            # A last try for records the history still owes; whatever stays owed, the next start reconciles.
            self._write_owed_history()

    async def stop_leftover(self) -> None:
        """Stop the jobs of runs that earlier services died in, if they still run: never two jobs at once, not
        even across a crash. Called at start-up, before anything else happens. They stay in the state until
        stopped: a crash meanwhile leaves the next start the same search to make."""
        for run_id, _pid in self.state.leftovers:
            await stop_leftover(run_id, self._kill_grace)
        if self.state.leftovers:
            self.state = replace(self.state, leftovers=())
            self._save()

    def keep_for_next_start(self, trigger: Trigger) -> None:
        """A trigger that came after the runner stopped taking work: saved as pending, for the next start."""
        log.info("%s trigger while stopping: kept for the next start", trigger.source.value)
        self._take([trigger])

    def stop_starting(self) -> None:
        """Start no new run from now on (the service is shutting down); triggers stay pending."""
        self._stopping = True

    @property
    def running(self) -> bool:
        return self.state.current is not None

    def cancel(self, reason: str) -> str | None:
        """Ask the running run to end as ``cancelled``; its id, or ``None`` if nothing runs."""
        current = self.state.current
        if current is None:
            return None
        if self._stop_request is None:
            self._stop_request = Stop(RunStatus.CANCELLED, reason)
            # On disk before the caller hears "cancelling": a crash from here on must not run it again.
            self._intend_stop(self._stop_request)
            self._watch.set()
            self._on_change()
        return current.run_id

    def saw_file_progress(self, run_id: str | None, percent: float, step: str) -> None:
        """Progress read from the progress file. A job may write it itself, and that is a sign of life for
        stall detection; but the file also echoes what we wrote, late and perhaps out of order, and an echo
        must not count again (it would move the stall deadline by however late it is)."""
        if (percent, step) not in self._reported:
            self._saw_progress(run_id, percent, step)

    def _saw_progress(self, run_id: str | None, percent: float, step: str) -> None:
        """What stall detection watches. Only a change counts; the same report again is no sign of life."""
        current = self.state.current
        if current is None or run_id != current.run_id or (percent, step) == self._seen_progress:
            return
        self._seen_progress = (percent, step)
        if len(self._reported) >= MAX_REMEMBERED_REPORTS:
            self._reported.clear()  # forgetting costs at most a stale echo counted as progress
        self._reported.add((percent, step))
        self._last_progress_mono = self._clock.monotonic()
        self._watch.set()

    # ------------------------------------------------------------------------------------------ the loop
    async def _intake(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Take whatever else is already queued in the same breath: one save, one wake-up.
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._take(batch)
            self._work.set()
            self._on_change()

    def _take(self, batch: Sequence[Trigger]) -> None:
        """Add ``batch`` to the pending triggers and save the state before any sender is told: a trigger
        file is removed, and a 202 sent, only for a trigger that is on disk. Always saved, idle or not: a
        run about to start is no excuse, the crash may come first.

        If the save fails, the triggers whose senders wait for the verdict are refused (they stay with
        their senders: the file stays in the folder, the request gets a 503) and the others (the timer's)
        run from memory, as everything does while the disk refuses writes."""
        before = self.state
        for trigger in batch:
            self.state = self.state.with_trigger(trigger)
        saved = self._save()
        taken = list(batch)
        if not saved and any(t.receipt is not None for t in batch):
            taken = [t for t in batch if t.receipt is None]
            self.state = before
            for trigger in taken:
                self.state = self.state.with_trigger(trigger)
            if taken:
                self._save()
        for trigger in batch:
            if trigger.receipt is not None:
                trigger.receipt.settle(saved)
        current = self.state.current
        for n, trigger in enumerate(taken):
            self.triggers_received[trigger.source] += 1
            if current is not None and n == 0 and not before.pending_count:
                # Logged once per follow-up, not once per trigger: a burst of files is one line.
                log.info(
                    "%s trigger during run %s%s: a follow-up run is queued",
                    trigger.source.value,
                    current.run_id,
                    f" ({trigger.reason})" if trigger.reason else "",
                )

    def hold_first_run(self, until: asyncio.Event) -> None:
        """Start no run before ``until`` is set (the triggers folder's first look: a file saved before a crash
        but not yet removed is taken then, and joins the first run instead of causing a second)."""
        self._first_run_gate = until

    async def _work_loop(self) -> None:
        await self._first_run_gate.wait()
        while True:
            await self._work.wait()
            self._work.clear()
            if self.state.pending_count and not self._stopping:
                await self._run_once()

    def _begin(self) -> RunRecord:
        """The pending triggers become the running run, saved and told of; the job is not spawned yet."""
        now = self._clock.now()
        pending = self.state
        record = RunRecord(
            run_id=new_run_id(now),
            triggers=pending.pending,
            started_at=now,
            trigger_count=pending.pending_count,
            retry_of=pending.retry_of,
            retried_beyond=pending.retried_beyond,
        )
        # Fresh supervision before the run is visible: a cancel from now on is for this run.
        self._stop_request = None
        self._seen_progress = (0.0, STARTING)
        self._reported = {self._seen_progress}
        self._started_mono = self._last_progress_mono = self._clock.monotonic()
        # On disk before the job is spawned: a crash from here on leaves the next start a run to find the
        # job of (by the run id in its environment) and to stop before it starts anything.
        self.state = replace(self.state, current=record, pending=(), pending_count=0, retry_of=None, retried_beyond=0)
        self._save()
        if record.trigger_count > 1:
            log.info("run %s absorbs %d triggers", record.run_id, record.trigger_count)
        self._tell("run_started", record)
        self._set_progress(
            Progress(
                status=RunStatus.RUNNING,
                step=STARTING,
                progress=0,
                started_at=now,
                run_id=record.run_id,
                trigger=record.source.value,
            )
        )
        self._on_change()
        return record

    async def _run_once(self) -> None:
        record = self._begin()
        ctx = RunContext(
            record.run_id,
            record.source,
            record.reason,
            self._progress_file.path,
            self._logs.open(record.run_id) if self._logs is not None else ignore_output,  # the run's log file
        )
        job: asyncio.Task[JobResult] | None = None
        try:
            # Land "running" before the job starts, so it cannot overwrite the job's own first report.
            await self._flush_progress()
            job = asyncio.create_task(self._job.run(ctx, self._report, self._started), name=f"job-{record.run_id}")
            job.add_done_callback(lambda _: self._watch.set())
            stop = await self._supervise(job)
        except asyncio.CancelledError:
            # The service is stopping: end the job, record the outcome, then let the cancel go on.
            if job is not None:
                self._intend_stop(Stop(RunStatus.CANCELLED, "service stopped"))
                await _end(job)
            await self._flush_progress()
            self._finish(record, JobResult(RunStatus.CANCELLED, error="service stopped"))
            await self._flush_progress()
            raise
        if stop is not None and not job.done():
            log.warning("run %s: %s%s; stopping the job", record.run_id, stop.reason, stop.detail)
            self._intend_stop(stop)
            cancelled = await _end(job)
            result = JobResult(stop.status, error=stop.reason)
            if cancelled:
                # The service began stopping while this run was being ended; the outcome stands.
                await self._flush_progress()
                self._finish(record, result)
                await self._flush_progress()
                raise asyncio.CancelledError
        else:
            try:
                result = job.result()
            except Exception as exc:
                # A bug in supervising one run must not stop every later run.
                log.error("run %s: supervising the job failed", record.run_id, exc_info=exc)
                result = JobResult(RunStatus.ERROR, error=f"internal error: {exc!r}")
        try:
            await self._flush_progress()
        except asyncio.CancelledError:
            # The service is stopping just as the run ended: its outcome is known and must be recorded.
            self._finish(record, result)
            await self._flush_progress()
            raise
        self._finish(record, result)

    async def _supervise(self, job: asyncio.Task[JobResult]) -> Stop | None:
        """Wait for the job to end by itself (``None``), or for a reason to end it: a cancel request, the
        timeout, or no progress for the stall timeout. Sleeps to the nearest deadline; never polls."""
        while not job.done():
            self._watch.clear()
            if self._stop_request is not None:
                return self._stop_request
            self._stop_request = self._overdue()
            if self._stop_request is not None:
                self._on_change()  # "stopping" shows while the job gets its grace period
                return self._stop_request
            await self._clock.wait(self._watch, self._next_deadline())
        return None

    def _intend_stop(self, stop: Stop) -> None:
        """Saved before the job is stopped: a service that dies during the grace period leaves a run that
        was meant to end, which the next start records as such and does not run again."""
        current = self.state.current
        if current is not None and current.stop_requested is None:
            self.state = replace(self.state, current=replace(current, stop_requested=(stop.status, stop.reason)))
            self._save()

    def _started(self, pid: int) -> None:
        """Record the job's process group, so a service that dies mid-run can stop it at its next start."""
        if self.state.current is not None:
            current = replace(self.state.current, pid=pid)
            self.state = replace(self.state, current=current)
            self._save()
            self._record_history(current)  # after the spawn: it costs the job's start nothing

    def _record_history(self, run: RunRecord) -> None:
        try:
            log_path = self._logs.relative_path(run.run_id) if self._logs is not None else None
            self._history.record(replace(run, pid=None), log_path=log_path)
        except StoreUnavailable as exc:
            # The run itself goes on, and the state file still has it; the history keeps the record and
            # writes it with the next one, or when the catch-up task tries again.
            if not self._history_failing:
                log.error(
                    "cannot record run %s in the history %s: %s; kept, and written once the history can be "
                    "written again",
                    run.run_id,
                    self._history.location,
                    exc,
                )
            self._history_failing = True
            self._history_behind.set()
        else:
            self._history_caught_up()

    def _history_caught_up(self) -> None:
        if self._history_failing:
            log.info("the history %s can be written again; the runs kept meanwhile are in it", self._history.location)
        self._history_failing = False
        self._history_behind.clear()

    async def _catch_up_history_forever(self) -> None:
        """While records wait for the history, try them again every :data:`HISTORY_RETRY`: without this, a run
        whose end could not be written would show as running until the next run, or the next start."""
        never = asyncio.Event()
        while True:
            await self._history_behind.wait()
            await self._clock.wait(never, self._clock.now() + HISTORY_RETRY)
            self._write_owed_history()

    def _write_owed_history(self) -> None:
        if not self._history_behind.is_set():
            return
        if self._history.owed:
            try:
                self._history.write_owed()
            except StoreUnavailable:
                return  # said once already, when the first record failed
        self._history_caught_up()

    def _tell(self, event: str, run: RunRecord) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, event)(run)
            except Exception:
                # A listener's bug must not stop runs (nor the other listeners); it is logged with its trace.
                log.exception("run %s: %s.%s failed", run.run_id, type(listener).__name__, event)

    def _finish(self, record: RunRecord, result: JobResult) -> None:
        now = self._clock.now()
        error = result.error
        done = replace(
            record,
            pid=None,
            status=result.status,
            finished_at=now,
            exit_code=result.exit_code,
            error=error,
            step=self._last_step(record.run_id),
        )
        not_before = self.state.not_before
        if record.is_manual:
            not_before = self._schedule.cooldown_until(now)
        self.state = replace(self.state, current=None, last_run=done, not_before=not_before)
        self._save()
        self._record_history(done)
        if self._logs is not None:
            self._logs.close(done)  # its last lines are written on a worker thread; live readers get the end
        self._tell("run_finished", done)
        if result.status is RunStatus.COMPLETED:
            final = self._progress_for(done, step="Completed", percent=100)
            log.info("run %s completed in %.1fs", done.run_id, done.duration_seconds or 0)
        else:
            headline = (error or result.status.value).split("\n", 1)[0]  # not splitlines: a CR is shown, not a line end
            final = self._progress_for(done, step=f"{result.status.value.capitalize()}: {headline}")
            log.warning("run %s ended %s: %s", done.run_id, result.status.value, headline)
        self._set_progress(final)
        if self.state.pending_count:
            self._work.set()
        self._on_change()

    def _progress_for(self, run: RunRecord, *, step: str, percent: float | None = None) -> Progress:
        return Progress(
            status=run.status,
            step=step,
            progress=self._progress.progress if percent is None else percent,
            started_at=run.started_at,
            finished_at=run.finished_at,
            run_id=run.run_id,
            trigger=run.source.value,
            error=run.error,
            exit_code=run.exit_code,
        )

    def _deadlines(self) -> list[tuple[float, Stop]]:
        """(monotonic time, why) at which the running run is to be ended."""
        found: list[tuple[float, Stop]] = []
        if self._timeout is not None:
            detail = f" (still running after {_minutes(self._timeout)})"
            at = self._started_mono + self._timeout.total_seconds()
            found.append((at, Stop(RunStatus.ERROR, "timed out", detail)))
        if self._stall_timeout is not None:
            detail = f" (no progress for {_minutes(self._stall_timeout)})"
            at = self._last_progress_mono + self._stall_timeout.total_seconds()
            found.append((at, Stop(RunStatus.ERROR, "stalled", detail)))
        return found

    def _overdue(self) -> Stop | None:
        now = self._clock.monotonic()
        return next((stop for at, stop in self._deadlines() if now >= at), None)

    def _next_deadline(self) -> datetime | None:
        """The nearest deadline as a wall-clock time for :meth:`Clock.wait`, recomputed on each wake."""
        at = min((at for at, _ in self._deadlines()), default=None)
        if at is None:
            return None
        return self._clock.now() + timedelta(seconds=max(0.0, at - self._clock.monotonic()))

    @property
    def stopping(self) -> Stop | None:
        """Why the running run is being ended, while it gets its grace period."""
        return self._stop_request if self.running else None

    # --------------------------------------------------------------------------------------- progress
    def _report(self, percent: float, step: str | None) -> None:
        if self.state.current is None:
            return
        self._set_progress(self._progress.advanced(percent, self._progress.step if step is None else step))
        self._saw_progress(self._progress.run_id, self._progress.progress, self._progress.step)

    def _set_progress(self, progress: Progress) -> None:
        """Latest-value slot: a job printing a thousand lines a second costs one write per loop turn."""
        self._progress = progress
        self._progress_dirty.set()

    async def _write_progress_forever(self) -> None:
        while True:
            await self._progress_dirty.wait()
            await self._flush_progress()

    async def _flush_progress(self) -> None:
        # One write at a time: two writes in flight in two threads could land in the wrong order.
        async with self._write_lock:
            if not self._progress_dirty.is_set():
                return
            self._progress_dirty.clear()
            progress = self._progress
            try:
                # Held to its end even if we are cancelled: a write still running in its thread after we let go
                # of the lock could land after the outcome's write and leave the file saying "running".
                await outlast_cancel(asyncio.ensure_future(asyncio.to_thread(self._progress_file.write, progress)))
            except OSError as exc:
                if not self._progress_failing:
                    log.error("cannot write progress file %s: %s", self._progress_file.path, exc)
                self._progress_failing = True
                # The file will not carry this news to the watchers: publish it from memory instead.
                self._on_change()
            else:
                self._progress_failing = False

    def _last_step(self, run_id: str) -> str:
        """The run's last step, whoever reported it: the file holds the later of our writes (all landed by
        now) and the job's own, if it wrote the file itself."""
        try:
            on_file = self._progress_file.read()
        except (OSError, InvalidDocument):
            on_file = None
        if on_file is not None and on_file.run_id == run_id and on_file.status is RunStatus.RUNNING:
            return on_file.step
        return self._progress.step

    @property
    def progress_on_disk(self) -> bool:
        """Whether the last progress write landed; if not, the file is behind and memory is the truth."""
        return not self._progress_failing

    @property
    def progress(self) -> Progress:
        """What the runner itself last reported (the web sees the file, which the job may also write)."""
        return self._progress

    # ---------------------------------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """A run still marked current means the previous service died during it: record it as an error and,
        unless it was being stopped on purpose or was itself a retry, run it again once with its triggers (its
        senders were told it would run). Then close whatever the history still shows as running: the
        service may have died between saving the state and finishing the history row."""
        current = self.state.current
        if current is not None:
            self._recover_run(current)
        self._reconcile_history()

    def _recover_run(self, current: RunRecord) -> None:
        now = self._clock.now()
        if current.stop_requested is not None:
            status, why = current.stop_requested
            error = f"interrupted: service stopped while the job was being stopped ({why})"
        else:
            status, error = RunStatus.ERROR, INTERRUPTED
        done = replace(
            current,
            pid=None,
            status=status,
            finished_at=now,
            error=error,
            step=self._last_step(current.run_id),  # the progress file still says how far it got
            stop_requested=None,
        )
        state = replace(
            self.state, current=None, last_run=done, leftovers=(*self.state.leftovers, (current.run_id, current.pid))
        )
        # Each trigger is owed one more try after a crash, not more: a run that kills the service every time
        # must not do so for ever (and a trigger that joined a retry still gets its own).
        owed = tuple(replace(t, retried=True) for t in current.triggers if not t.retried)
        dropped = sum(t.retried for t in current.triggers) + current.retried_beyond
        fresh_beyond = current.trigger_count - len(current.triggers) - current.retried_beyond
        if current.stop_requested is not None:
            log.warning(
                "run %s was interrupted by a service stop while it was being stopped; recorded as %s, not run again",
                current.run_id,
                status.value,
            )
        elif not owed and not fresh_beyond:
            log.warning(
                "run %s%s was interrupted by a service stop; recorded as an error%s",
                current.run_id,
                f" (a retry of {current.retry_of})" if current.retry_of else "",
                ", not run again: its triggers were retried once already" if current.triggers else "",
            )
        else:
            log.warning(
                "run %s was interrupted by a service stop; recorded as an error, and run again once%s",
                current.run_id,
                f" ({dropped} trigger(s) already retried once are dropped)" if dropped else "",
            )
            # Beyond the recorded triggers only a count is kept, and how many of it are retries already.
            # (The owed ones come first and are never cut: a run records at most as many as a state keeps.)
            state = replace(
                state,
                pending=(*owed, *state.pending)[:MAX_RECORDED_TRIGGERS],
                pending_count=state.pending_count + len(owed) + fresh_beyond,
                retried_beyond=state.retried_beyond + fresh_beyond,
                retry_of=current.run_id,
            )
        self.state = state
        self._save()
        self._record_history(done)
        self._recovered = done
        with contextlib.suppress(OSError):
            self._progress_file.write(self._progress_for(done, step=f"{status.value.capitalize()}: {error}"))

    def _reconcile_history(self) -> None:
        """Rows still ``running`` with no run in flight: the state (saved first) knows how the last one ended;
        any other is closed as interrupted."""
        try:
            unfinished = self._history.unfinished()
        except StoreUnavailable as exc:
            log.error("cannot read the run history %s to close interrupted runs: %s", self._history.location, exc)
            return
        last = self.state.last_run
        for run in unfinished:
            if last is not None and run.run_id == last.run_id:
                fixed = last
            else:
                fixed = replace(run, pid=None, status=RunStatus.ERROR, finished_at=self._clock.now(), error=INTERRUPTED)
            log.warning("run %s was still running in the history; recorded as %s", run.run_id, fixed.status.value)
            self._record_history(fixed)

    def _save(self) -> bool:
        return self._store.save(self.state)


async def _end(job: asyncio.Task[JobResult]) -> bool:
    """Cancel the job's task, which stops its process group (SIGTERM, grace, SIGKILL), and wait for that to
    finish even if we are cancelled meanwhile: a second cancel would cut the escalation short.
    ``True`` if we were cancelled while waiting."""
    job.cancel()
    interrupted = False
    while not job.done():
        try:
            await asyncio.wait({job})
        except asyncio.CancelledError:
            interrupted = True
    with contextlib.suppress(asyncio.CancelledError, Exception):
        job.result()
    return interrupted


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


def new_run_id(now: datetime) -> str:
    """Sortable and unique enough: ``20260120T100000Z-3fa9c1``."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
