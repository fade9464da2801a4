"""One job and everything that belongs to it, built from one :class:`JobSpec`: its queue, interval timer and
trigger folder (the producers), its runner (the one consumer), its progress file and the monitor on it, the
hub its status is published on, its recent runs and the estimate of when its run ends. The service
(orchestrator/service.py) builds one and starts it in its exit stack; the HTTP room sees it only as a read-only
status view and a command interface (orchestrator/http/ports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.core.clock import Clock
from orchestrator.core.events import Receipt, RunStatus, Source, Trigger, TriggerNotSaved
from orchestrator.core.records import Pause, RunRecord, State
from orchestrator.core.schedule import Schedule
from orchestrator.job.protocol import Job
from orchestrator.job.subprocessjob import SubprocessJob
from orchestrator.jobsfile.spec import JobSpec
from orchestrator.live.encoded import Changes, StatusCache, Template, template
from orchestrator.live.hub import Hub
from orchestrator.live.monitor import ProgressMonitor
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.live.status import Checks, NoChecks, Publisher, StatusInputs, shown_progress, with_step_start
from orchestrator.ops.estimator import FinishEstimator
from orchestrator.ops.recent import RecentRuns
from orchestrator.runner import RunListener, Runner
from orchestrator.runner.slots import Slots
from orchestrator.sources.folder import FolderSource
from orchestrator.sources.loopobserver import LoopObserver
from orchestrator.sources.timer import IntervalTimer
from orchestrator.sources.watchhub import WatchHub
from orchestrator.store import JobStates, RunHistory, StateStore
from orchestrator.store.runlogs import RunLogs
from orchestrator.store.statefile import StateFile

if TYPE_CHECKING:  # the step figures: imported when a page asks for them
    from orchestrator.core.stepstats import RunTimeline

log = logging.getLogger(__name__)

SAVE_TIMEOUT_SECONDS = 10.0
"""How long a request waits for its trigger to be saved; the runner saves at once, unless it is gone."""


@dataclass(frozen=True, slots=True)
class Shared:
    """What every job's unit shares: the clock, the history and logs, the hubs of folder watches (stopped after
    the units), the state file of every job, the run slots (``max-parallel``), and the names in the triggers
    folder that are other jobs' folders (a live set: a reload changes it)."""

    clock: Clock
    history: RunHistory
    logs: RunLogs
    watches: WatchHub  # the progress files' (watchdog's observer)
    states: JobStates | None = None
    slots: Slots = field(default_factory=Slots)
    leave_alone: Container[str] = frozenset()
    on_ending: Callable[[RunRecord], None] = lambda run: None
    """Told of each job's run that completed, just before its outcome is saved (the chains)."""
    trigger_watches: WatchHub = field(default_factory=lambda: WatchHub(observer=LoopObserver()))
    """The triggers folders' watches, handed on on the event loop (a touch is heard after one hop)."""
    status_changes: Changes = field(default_factory=Changes)
    """Counts every job's status documents built (``GET /api/jobs`` answers the same text until it moves)."""


class JobUnit:
    """One job's parts, wired to each other; its status view and its commands (``request_run``, ``cancel``,
    ``set_pause``). ``listeners``: the runner's run listeners (the recent runs are added here, the caller may add
    more)."""

    def __init__(self, spec: JobSpec, shared: Shared, *, job: Job | None = None, listeners: list[RunListener]) -> None:
        self.spec = spec
        self.clock = clock = shared.clock
        self.schedule = spec.schedule
        self.timing = spec.timing
        """When automatic runs are due; ``None`` for a job that runs on triggers and ``after`` only."""
        self.queue: asyncio.Queue[Trigger] = asyncio.Queue()
        self.hub = Hub()
        self.publisher = Publisher(self.hub, clock)
        self.encoded = StatusCache(lambda now: _template(self, now), shared.status_changes)  # as JSON, once a change
        self.progress_file = ProgressFile(spec.progress_path)
        states = shared.states or StateFile(spec.state_path, default_job=spec.name)
        self.state_store: StateStore = states.job(spec.name)
        """The runner's store; also saves a pause at once (``set_pause``). Without the service's one file of
        every job's state, a file whose default job is this one: a state file of the previous version is its."""
        self.recent = RecentRuns(shared.history, job=spec.name)
        """The newest finished runs, for the estimates and the checks."""
        self.recent.watch(self.publish)
        listeners.append(self.recent)
        self.estimator = FinishEstimator(self.recent)
        self.monitor = ProgressMonitor(self.progress_file, self._on_progress_file, shared.watches)
        self.runner = _runner(self, shared, job, listeners)
        self.runner.recover()  # loads the state and closes a run the last service died in, before any reader
        self.timer = IntervalTimer(self.queue, clock, self._due)
        folders, leave_alone = shared.trigger_watches, shared.leave_alone
        self.folder = FolderSource(spec.triggers_dir, self.queue, clock, folders, leave_alone=leave_alone)
        self.runner.hold_first_run(self.folder.first_look)
        self.checks: Checks = NoChecks()
        self._was_running = False
        self._stopping = False
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------------------------------- lifecycle
    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        """Before anything serves: a job left over by a crash stopped, the progress file read and published,
        the watches on the progress file and the trigger folder started (and stopped by ``stack``)."""
        await self.runner.stop_leftover()
        if self.spec.paused and self.runner.state.paused is None:
            self.runner.set_pause(Pause(self.clock.now(), "paused in the jobs file"))
        self.monitor.read_now()
        self.publish()
        self.monitor.start()
        stack.callback(self.monitor.stop)
        self.folder.start()
        stack.callback(self.folder.stop)

    def serve(self, stack: contextlib.AsyncExitStack, on_end: Callable[[asyncio.Task[None]], None]) -> None:
        """Start the background tasks; ``stack`` ends them in reverse (the runner last); ``on_end`` is told of a
        task that ends by itself."""
        for name, coro in (
            ("runner", self.runner.serve()),
            ("timer", self.timer.serve()),
            ("trigger-folder", self.folder.serve()),
            ("progress-monitor", self.monitor.serve()),
            ("recent-runs", self.recent.serve()),
        ):
            task = asyncio.create_task(coro, name=name)
            task.add_done_callback(on_end)
            stack.push_async_callback(_end, task)

    def close_intake(self, *, end_streams: bool = True) -> None:
        """No run starts from now on (a trigger that comes is kept for the next start); streams end, unless
        the unit is being replaced (a reload): its streams end with it, and their clients come back to the new."""
        self._stopping = True
        self.runner.stop_starting()
        if end_streams:
            self.hub.close()

    @property
    def closed(self) -> bool:
        """No run starts any more (the service stops, or a reload removes or replaces the job)."""
        return self._stopping

    async def idle(self) -> None:
        """Until no run of this job goes on."""
        while self.runner.running:
            self._changed.clear()
            await self._changed.wait()

    def take(self, trigger: Trigger) -> None:
        """A trigger nobody waits on (a chain's), saved at once; once closed, it is kept for the next start
        (the runner starts nothing more)."""
        self.runner.take_now(trigger)

    # ------------------------------------------------------------------------------------------ commands
    async def request_run(self, source: Source, reason: str = "") -> Trigger:
        """Put a trigger on the queue and return it once it is in the state on disk: only then may the
        caller say it was accepted. :class:`TriggerNotSaved` if the state could not be written."""
        trigger = Trigger(source, self.clock.now(), reason, receipt=Receipt())
        if self._stopping:
            # In flight when the service began to stop: nothing runs any more; saved for the next start.
            self.runner.keep_for_next_start(trigger)
            self.publish()
        else:
            await self.queue.put(trigger)
        return await _saved(trigger, self.state_store)

    def cancel(self, reason: str) -> str | None:
        """End the running run as ``cancelled``; its id, or ``None`` if nothing runs."""
        return self.runner.cancel(reason)

    def set_pause(self, paused: Pause | None) -> bool:
        """Pause (``paused``) or resume (``None``) the automatic schedule; ``False`` if the state file could not
        be written (the change holds until the service restarts)."""
        # The runner owns the state and saves it on each of its changes; this change is saved at once, through
        # the same store (one writer), and every later save of the runner's carries it.
        saved = self.runner.set_pause(paused)
        self.timer.reschedule()
        self.publish()
        return saved

    # --------------------------------------------------------------------------------------- status view
    def now(self) -> datetime:
        return self.clock.now()

    @property
    def state(self) -> State:
        return self.runner.state

    @property
    def running(self) -> bool:
        return self.runner.running

    @property
    def stopping(self) -> str | None:
        """Why the running run is being stopped, or ``None``."""
        return stop.reason if (stop := self.runner.stopping) is not None else None

    @property
    def paused(self) -> Pause | None:
        return self.runner.state.paused

    @property
    def waiting(self) -> bool:
        """Runs are asked for and wait for a slot (``max-parallel`` runs of other jobs go on)."""
        return self.runner.waiting

    def triggers_received(self) -> Mapping[Source, int]:
        return self.runner.triggers_received

    def next_run_at(self) -> datetime | None:
        """When the next automatic run is due; ``None`` for a job with no automatic runs."""
        if self.timing is None:
            return None
        state = self.runner.state
        return self.timing.next_run_at(last_run_at=state.last_run_at, not_before=state.not_before, now=self.clock.now())

    def running_steps(self) -> RunTimeline | None:
        return _running_timeline(self.runner)

    def progress(self) -> Progress:
        shown = shown_progress(self.runner.progress, self.monitor.latest, ours_on_disk=self.runner.progress_on_disk)
        return with_step_start(shown, self.runner.progress.run_id, self.runner.steps())

    def status(self) -> dict[str, Any]:
        """The status document, built now (and kept, encoded once asked for: ``status_json``)."""
        return self.encoded.renew(self.clock.now(), self.runner.state).document

    def status_json(self) -> bytes:
        return self.encoded.at(self.clock.now(), self.runner.state)

    def publish(self) -> None:
        self.publisher.publish(self.status())

    def latest(self) -> tuple[int, dict[str, Any]]:
        return self.hub.latest()

    async def next_after(self, version: int) -> tuple[int, dict[str, Any]]:
        return await self.hub.next_after(version)

    def status_event(self, version: int, document: dict[str, Any]) -> str:
        return self.publisher.status_event(version, document)

    # ---------------------------------------------------------------------------------------- the wiring
    def _due(self) -> tuple[datetime | None, object]:
        """For the timer: nothing is due while a run goes on (its end may start a cooldown), nor while the
        schedule is paused (on resume, a run that fell due meanwhile is due at once)."""
        state = self.runner.state
        inputs = (state.last_run_at, state.not_before, self.runner.running)
        due = None if self.runner.running or state.paused else self.next_run_at()
        return due, inputs

    def _on_runner_change(self) -> None:
        self.timer.reschedule()
        if self._was_running and not self.runner.running:
            self.folder.rescan()  # a burst of events may have been dropped while we were busy
        self._was_running = self.runner.running
        self._changed.set()
        self.publish()

    def _on_progress_file(self, progress: Progress) -> None:
        # A job that writes the progress file itself shows signs of life there, not on stdout.
        if progress.status is RunStatus.RUNNING:
            self.runner.saw_file_progress(progress)
        self.publish()


def _template(unit: JobUnit, now: datetime) -> Template:
    """The status document as of ``now``, with what its clock fields count to and until when the rest holds."""
    state, spec = unit.runner.state, unit.spec
    due, progress, current = unit.next_run_at(), unit.progress(), state.current
    eta = unit.estimator.finish(current, progress, now, unit.runner.steps())
    checks = unit.checks.status_checks(
        now=now, due=due, paused=state.paused is not None, current=current, last=state.last_run
    )
    inputs = StatusInputs(
        state,
        progress,
        due,
        spec.interval_minutes if isinstance(unit.timing, Schedule) else None,
        spec.cooldown_minutes,
        unit.stopping,
        None if eta is None else eta.to_json(now),
        tuple(checks),
        job=spec.name,
        schedule=spec.schedule_json(),
        waiting=unit.runner.waiting,
        after=spec.after,
    )
    finish_at, due_counts = None if eta is None else eta.finish_at, unit.timing is not None and not state.last_run_at
    return template(inputs, now, finish_at=finish_at, checks_change=unit.checks.changes_at(now), due_counts=due_counts)


def _runner(unit: JobUnit, shared: Shared, job: Job | None, listeners: list[RunListener]) -> Runner:
    spec = unit.spec
    runner = Runner(
        queue=unit.queue,
        job=job or SubprocessJob(spec.command, kill_grace=spec.kill_grace_seconds, cwd=spec.cwd, extra_env=spec.env),
        clock=shared.clock,
        schedule=unit.schedule,
        store=unit.state_store,
        progress_file=unit.progress_file,
        on_change=unit._on_runner_change,
        kill_grace=spec.kill_grace_seconds,
        timeout=spec.timeout,
        stall_timeout=spec.stall_timeout,
        history=shared.history,
        listeners=listeners,
        logs=shared.logs,
        name=spec.name,
        slots=shared.slots,
        on_ending=shared.on_ending,
    )
    runner.tell_landed(unit.monitor.landed)
    return runner


async def _saved(trigger: Trigger, store: StateStore) -> Trigger:
    """``trigger`` once the runner has saved it in the state on disk; :class:`TriggerNotSaved` if it could not."""
    assert trigger.receipt is not None
    try:
        async with asyncio.timeout(SAVE_TIMEOUT_SECONDS):
            saved = await trigger.receipt.saved()
    except TimeoutError:
        raise TriggerNotSaved("the service did not take the trigger in time (is it stopping?)") from None
    if not saved:
        raise TriggerNotSaved(f"the state file cannot be written ({store.last_error or 'unknown'})")
    return trigger


async def _end(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        log.exception("background task %s failed", task.get_name())


def _running_timeline(runner: Runner) -> RunTimeline | None:
    from orchestrator.core.stepstats import RunTimeline  # the step figures: imported when a page asks for them

    current = runner.state.current
    return RunTimeline(current.run_id, current.started_at, None, runner.steps()) if current else None
