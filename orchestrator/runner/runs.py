"""The run lifecycle: pending triggers become a run (saved before the job is spawned), the job runs under
supervision, and its outcome is saved, recorded, told to the listeners and written as the last progress."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from orchestrator.core.clock import Clock
from orchestrator.core.events import RunStatus
from orchestrator.core.outlast import cancel_and_outlast
from orchestrator.core.records import RunRecord
from orchestrator.core.runevents import RunEvent, RunFinished, RunListener, RunStarted
from orchestrator.core.schedule import Cooldown
from orchestrator.core.steps import STARTING, Parsed
from orchestrator.job.protocol import Job, JobResult, RunContext, ignore_output
from orchestrator.live.progress import Progress
from orchestrator.runner.handoff import Handoff, begun, next_run
from orchestrator.runner.ledger import Ledger
from orchestrator.runner.progresswriter import ProgressWriter
from orchestrator.runner.recording import HistoryRecorder
from orchestrator.runner.slots import Slots
from orchestrator.runner.steps import RunSteps
from orchestrator.runner.supervision import Stop, Supervisor
from orchestrator.store.runlogs import RunLogs

log = logging.getLogger(__name__)

SERVICE_STOPPED = Stop(RunStatus.CANCELLED, "service stopped")


@dataclass(frozen=True, slots=True)
class Parts:
    """What a run touches, shared with the rest of the runner."""

    ledger: Ledger
    clock: Clock
    schedule: Cooldown
    writer: ProgressWriter
    recorder: HistoryRecorder
    supervisor: Supervisor
    listeners: Sequence[RunListener]
    logs: RunLogs | None
    on_change: Callable[[], None]
    steps: RunSteps
    job_name: str
    ending: Callable[[RunRecord], None] = lambda run: None
    """Told of a run that completed just before its outcome is saved (the chains: a follower's trigger is on
    disk first, so a crash in between reruns the run rather than losing the follower's run)."""


class RunLoop:
    """Runs one run at a time while there are pending triggers and the service is not stopping."""

    def __init__(
        self, parts: Parts, job: Job, work: asyncio.Event, slots: Slots, decided: asyncio.Event | None = None
    ) -> None:
        self._p = parts
        self._job = job
        self._work = work
        self._decided = decided or _always_set()
        """Set unless the intake waits to hear whether a batch is on disk (no run begins from it until then)."""
        self._slots = slots
        self.stopping = False
        self.waiting = False
        """Runs are asked for, and wait for a slot (``max-parallel`` runs of other jobs go on)."""
        self.first_run_gate = asyncio.Event()
        self.first_run_gate.set()
        self._unannounced: RunRecord | None = None
        """The run begun whose start is not told yet (see :meth:`_announce`)."""
        self.handoff = Handoff(
            parts.ledger,
            slots,
            work,
            parts.clock,
            job=parts.job_name,
            stopping=lambda: self.stopping,
            supervise=parts.supervisor.begin,
        )

    async def serve(self) -> None:
        await self.first_run_gate.wait()
        while True:
            handed = await self.handoff.wait()
            if handed is not None:
                await self._run_handed(handed)
                continue
            state = self._p.ledger.state
            if state.pending_count and not self.stopping:
                first_asked = min((t.at for t in state.pending), default=self._p.clock.now())
                async with self._slots.hold(first_asked, self._wait):
                    while not self._decided.is_set():  # no await between the last look and the begin
                        await self._decided.wait()
                    # The service may have begun to stop while the run waited; a refused batch may be gone.
                    if not self.stopping and self._p.ledger.state.pending_count:
                        await self._run_once(self._begin())

    async def _run_handed(self, run: RunRecord) -> None:
        """The run the intake began (saved with its triggers), in the slot it took for it."""
        try:
            if self.stopping:
                self.handoff.give_back(run)
                self._p.on_change()
            else:
                await self._run_once(run)
        finally:
            self._slots.release()

    def _wait(self, waiting: bool) -> None:
        self.waiting = waiting
        self._p.on_change()

    def _begin(self) -> RunRecord:
        """The pending triggers become the running run, saved; its job is not spawned yet."""
        p = self._p
        run = next_run(p.ledger.state, p.clock.now(), p.job_name)
        p.supervisor.begin()
        # On disk before the job is spawned: a crash from here on leaves the next start a run to find the
        # job of (by the run id in its environment) and to stop before it starts anything.
        p.ledger.state = begun(p.ledger.state, run)
        p.ledger.save()
        return run

    def _announce(self) -> None:
        """Tell the listeners and the watchers that the run started: once its job is spawned, so that none
        of it delays the spawn (and before the run's end, whatever happens)."""
        record, self._unannounced = self._unannounced, None
        if record is not None:
            tell(self._p.listeners, RunStarted(record))
            self._p.on_change()
            self._p.writer.stage()  # the next run's "running", ready

    async def _run_once(self, record: RunRecord) -> None:
        self._unannounced = record
        open_run(self._p, record)
        logs = self._p.logs
        output = logs.open(record.run_id) if logs is not None else ignore_output  # the run's log file
        ctx = RunContext(
            record.run_id, record.source, record.reason, self._p.writer.file.path, output, job=self._p.job_name
        )
        job: asyncio.Task[JobResult] | None = None
        try:
            # Land "running" before the job starts, so it cannot overwrite the job's own first report.
            await self._p.writer.land()
            job = asyncio.create_task(
                self._job.run(ctx, functools.partial(take_report, self._p), self._started), name=f"job-{record.run_id}"
            )
            # After the task's first step, which spawns the job.
            asyncio.get_running_loop().call_soon(self._announce)
            job.add_done_callback(lambda _: self._p.supervisor.watch.set())
            stop = await self._p.supervisor.supervise(job)
        except asyncio.CancelledError:
            # The service is stopping: end the job, record the outcome, then let the cancel go on.
            if job is not None:
                self.intend_stop(SERVICE_STOPPED)
                await cancel_and_outlast(job)
            await self._conclude(record, JobResult(RunStatus.CANCELLED, error="service stopped"), stopping=True)
            return
        result, cancelled = await self._outcome(record, job, stop)
        await self._conclude(record, result, stopping=cancelled)

    async def _outcome(
        self, record: RunRecord, job: asyncio.Task[JobResult], stop: Stop | None
    ) -> tuple[JobResult, bool]:
        """How the run ended, and whether the service began stopping while it was being ended."""
        if stop is not None and not job.done():
            log.warning("%s: run %s: %s%s; stopping the job", self._p.job_name, record.run_id, stop.reason, stop.detail)
            self.intend_stop(stop)
            # Cancelling the job's task stops its process group (SIGTERM, grace, SIGKILL); a second cancel
            # must not cut that short. If the service began stopping meanwhile, the outcome stands.
            cancelled = await cancel_and_outlast(job)
            return JobResult(stop.status, error=stop.reason), cancelled
        try:
            return job.result(), False
        except Exception as exc:
            # A bug in supervising one run must not stop every later run.
            log.error("run %s: supervising the job failed", record.run_id, exc_info=exc)
            return JobResult(RunStatus.ERROR, error=f"internal error: {exc!r}"), False

    async def _conclude(self, record: RunRecord, result: JobResult, *, stopping: bool) -> None:
        """The run's last report lands, then its outcome is recorded. If the service is stopping (or begins
        to, during that write) the outcome's own write lands too before the cancel goes on: its outcome is
        known and must be recorded."""
        try:
            await self._p.writer.flush()
        except asyncio.CancelledError:
            stopping = True
        self._finish(record, result)
        if stopping:
            await self._p.writer.flush()
            raise asyncio.CancelledError

    def intend_stop(self, stop: Stop) -> None:
        """Saved before the job is stopped: a service that dies during the grace period leaves a run that
        was meant to end, which the next start records as such and does not run again."""
        ledger = self._p.ledger
        current = ledger.state.current
        if current is not None and current.stop_requested is None:
            ledger.state = replace(ledger.state, current=replace(current, stop_requested=(stop.status, stop.reason)))
            ledger.save()

    def _started(self, pid: int) -> None:
        """Record the job's process group, so a service that dies mid-run can stop it at its next start."""
        ledger = self._p.ledger
        if ledger.state.current is not None:
            current = replace(ledger.state.current, pid=pid)
            ledger.state = replace(ledger.state, current=current)
            ledger.save()
            self._p.recorder.record(current)  # after the spawn: it costs the job's start nothing

    def _finish(self, record: RunRecord, result: JobResult) -> None:
        self._announce()  # a run stopped before its job was spawned started all the same
        p = self._p
        now = p.clock.now()
        error = result.error
        done = replace(
            record,
            pid=None,
            status=result.status,
            finished_at=now,
            exit_code=result.exit_code,
            error=error,
            step=p.writer.last_step(record.run_id),
        )
        steps = p.steps.finish(now, 100 if result.status is RunStatus.COMPLETED else None)
        not_before = p.schedule.cooldown_until(now) if record.is_manual else p.ledger.state.not_before
        if done.status is RunStatus.COMPLETED:
            p.ending(done)
        p.ledger.state = replace(p.ledger.state, current=None, last_run=done, not_before=not_before)
        p.ledger.save()
        p.recorder.record(done, steps)
        if p.logs is not None:
            p.logs.close(done)  # its last lines are written on a worker thread; live readers get the end
        tell(p.listeners, RunFinished(done, steps))
        if result.status is RunStatus.COMPLETED:
            final = p.writer.ended(done, step="Completed", percent=100)
            log.info("%s: run %s completed in %.1fs", p.job_name, done.run_id, done.duration_seconds or 0)
        else:
            headline = (error or result.status.value).split("\n", 1)[0]  # not splitlines: a CR is shown, not a line end
            final = p.writer.ended(done, step=f"{result.status.value.capitalize()}: {headline}")
            log.warning("%s: run %s ended %s: %s", p.job_name, done.run_id, result.status.value, headline)
        p.writer.set(final)
        if p.ledger.state.pending_count:
            self._work.set()
        p.on_change()


def open_run(p: Parts, record: RunRecord) -> None:
    """The run, begun and saved (its supervision too), gets its steps and first progress (nobody is told yet)."""
    if record.trigger_count > 1:
        log.info("%s: run %s absorbs %d triggers", p.job_name, record.run_id, record.trigger_count)
    now = record.started_at
    p.steps.begin(record.run_id, STARTING, now)
    p.writer.set(
        Progress(
            status=RunStatus.RUNNING,
            step=STARTING,
            progress=0,
            started_at=now,
            run_id=record.run_id,
            trigger=record.source.value,
            step_started_at=now,
        )
    )


def take_report(p: Parts, parsed: Parsed) -> None:
    """A progress line of the running job: a step, a detail, counts, a percent."""
    if p.ledger.state.current is None:
        return
    step = p.steps.report(parsed, p.clock.now())
    report, progress = parsed.report, p.writer.progress
    same_step = report.step is None or report.step == progress.step
    p.writer.set(
        replace(
            progress,
            progress=progress.progress if report.percent is None else report.percent,
            step=progress.step if report.step is None else report.step,
            # A new step starts without the last one's detail and counts.
            detail=report.detail if report.detail is not None or not same_step else progress.detail,
            done=report.done if report.done is not None or not same_step else progress.done,
            total=report.total if report.total is not None or not same_step else progress.total,
            step_started_at=step.started_at if step is not None else progress.step_started_at,
        )
    )
    p.supervisor.saw_progress(p.writer.progress.sign)


def _always_set() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


def tell(listeners: Sequence[RunListener], event: RunEvent) -> None:
    """Tell every listener; a listener's bug must not stop runs (nor the other listeners): it is logged with
    its trace."""
    for listener in listeners:
        try:
            if isinstance(event, RunStarted):
                name = "run_started"
                listener.run_started(event)
            else:
                name = "run_finished"
                listener.run_finished(event)
        except Exception:
            log.exception("run %s: %s.%s failed", event.run.run_id, type(listener).__name__, name)
