"""The composition root: builds the service's parts (the run history and logs, their retention, one unit per
job with its notifications, the chains between jobs, the run slots, metrics), starts them in one exit stack,
stops them in reverse, and reloads the jobs file."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.config import ConfigError, Settings
from orchestrator.core.clock import Clock, SystemClock
from orchestrator.core.events import Source, Trigger
from orchestrator.job.protocol import Job
from orchestrator.jobsfile.model import JobsFile
from orchestrator.jobsfile.plan import Plan, ReloadRefused
from orchestrator.jobsfile.spec import specs_of
from orchestrator.jobtable import JobTable
from orchestrator.live.encoded import StatusCache, StatusList
from orchestrator.live.hub import Hub
from orchestrator.ops.metrics import Metrics
from orchestrator.ops.notify import Notifier
from orchestrator.ops.retention import Retention
from orchestrator.runner import RunListener, Runner
from orchestrator.runner.slots import Slots
from orchestrator.sources.watchhub import WatchHub
from orchestrator.store import HISTORY_FILE_NAME, open_history
from orchestrator.store.runlogs import RunLogs
from orchestrator.store.statefile import StateFile
from orchestrator.unit import JobUnit, Shared

log = logging.getLogger(__name__)

__all__ = ["Orchestrator", "ReloadRefused"]


class Orchestrator:
    """The service: one unit per job and what serves every job (history, logs, retention, metrics, the run
    slots). ``jobs``: the jobs file as read at start (``None``: the one job of the flags); ``load_jobs`` reads
    and checks it again for a reload, raising a ``ConfigError`` with one line. ``job`` replaces the default
    job's subprocess, ``job_for(name)`` any job's (tests). ``on_fatal`` is called when a background task dies
    (the CLI stops the process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        job: Job | None = None,
        job_for: Callable[[str], Job | None] | None = None,
        jobs: JobsFile | None = None,
        load_jobs: Callable[[], JobsFile] | None = None,
        on_fatal: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings, self.failed, self._on_fatal, self._load_jobs = settings, False, on_fatal, load_jobs
        self.clock = clock or SystemClock()
        specs = specs_of(jobs, settings, since=self.clock.now())
        self.default_job = jobs.default_job if jobs is not None else next(iter(specs))
        """The job of ``/api/snapshot/...``, of the CLI without ``--job``, and of the triggers folder itself."""
        self.history = open_history(settings.store.data_dir / HISTORY_FILE_NAME, default_job=self.default_job)
        self.logs = RunLogs(settings.store.data_dir, self.clock)
        self.retention = Retention(
            self.history, self.logs, self.clock, keep_runs=settings.store.keep_runs, keep_days=settings.store.keep_days
        )
        self.retention.on_pruned(self._forget)
        names: set[str] = set()
        self.shared = Shared(
            clock=self.clock,
            history=self.history,
            logs=self.logs,
            watches=WatchHub(),
            states=StateFile(settings.store.state_path, default_job=self.default_job),
            slots=Slots(jobs.max_parallel if jobs is not None else None),
            leave_alone=names,
            on_ending=lambda run: self.table.chains.run_ending(run),  # noqa: PLW0108 (the table comes next)
        )
        # Told of each job as it is built (once its state is read), and reads every job at each scrape.
        self.metrics = Metrics(lambda: self.units, self.history)
        self.table = JobTable(
            settings,
            self.shared,
            default_job=self.default_job,
            first=(self.retention,),
            job_for=job_for or (lambda name: job if name == self.default_job else None),
            on_end=self._crashed,
            names=names,
            metrics=self.metrics,
        )
        for spec in specs.values():
            self.table.build(spec)
        self._stack = contextlib.AsyncExitStack()
        # Stopped last, whether the rest started or not: after the runners, each has the last run's end to tell.
        self._stack.push_async_callback(self.logs.stop)  # the last run's last lines
        self._stack.push_async_callback(self.retention.stop)
        # Before those, after everything the start adds: the watches are stopped by then, and this stops what a
        # failed start left subscribed.
        self._stack.callback(self.shared.watches.stop)
        self._stack.callback(self.shared.trigger_watches.stop)
        self._stack.push_async_callback(self.table.stop)
        self._stopping = False
        self._reloading = asyncio.Lock()
        self._served: tuple[int, Mapping[str, JobUnit]] = (-1, {})
        self._statuses = StatusList(self.shared.status_changes)

    # ----------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        await self.table.stop_leftovers()
        for unit in self.units.values():
            await self.table.start(unit)
        for name, unit in self.units.items():
            log.info("job %s: %s; command: %s", name, unit.spec.schedule_words(), " ".join(unit.spec.command))
        log.info(
            "%d job%s; triggers: %s; data: %s",
            len(self.units),
            "" if len(self.units) == 1 else "s",
            self.settings.job.triggers_dir,
            self.settings.store.data_dir,
        )
        settled = asyncio.create_task(_trim_once_read(list(self.units.values())), name="trim")
        self._stack.callback(settled.cancel)

    async def stop(self) -> None:
        """Stop producers first, then the runners (which end running jobs), then the watchers. Called as soon
        as the service is told to stop (before in-flight requests are drained); a second call is a no-op."""
        if self._stopping:
            return
        self._stopping = True
        log.info("stopping: no new runs start from now on; pending triggers are kept for the next start")
        self.table.close_intake()
        await self._stack.aclose()

    def _crashed(self, task: asyncio.Task[None]) -> None:
        """A background task that ends by itself is a bug; a half-working service would be worse than none,
        so the service stops (and the CLI exits non-zero, for systemd to restart it)."""
        if task.cancelled():
            return
        log.critical("background task %s died; stopping the service", task.get_name(), exc_info=task.exception())
        self.failed = True
        self._on_fatal()

    # -------------------------------------------------------------------------------------------- reload
    async def reload(self) -> Plan:
        """Read the jobs file again and apply it (:meth:`JobTable.apply`): added jobs start, removed ones take
        no more triggers (a run going finishes), changed ones take the change from their next run; nothing
        pending is lost. :class:`ReloadRefused` when there is no file, or it cannot be used (the jobs stay)."""
        if self._load_jobs is None:
            raise ReloadRefused("the service runs the one job of its flags: there is no jobs file to read again")
        async with self._reloading:
            try:
                jobs = await asyncio.to_thread(self._load_jobs)
                if jobs.default_job != self.default_job:
                    raise ConfigError(
                        f"default-job changed from {self.default_job!r} to {jobs.default_job!r}: that needs a restart"
                    )
            except ConfigError as exc:  # one line naming the file and the key
                log.error("reload refused, the running jobs stay: %s", exc)
                raise ReloadRefused(str(exc)) from None
            if self._stopping:
                raise ReloadRefused("the service is stopping")
            self.shared.slots.limit = jobs.max_parallel
            change = await self.table.apply(specs_of(jobs, self.settings, since=self.clock.now()))
            log.info("jobs file read again: %s", change.summary())
            return change

    def _forget(self, run_ids: list[str]) -> None:
        for unit in self.units.values():
            unit.recent.forget(run_ids)

    # ------------------------------------------------------------------------- what the HTTP room sees
    @property
    def units(self) -> Mapping[str, JobUnit]:
        """Every job's unit, by name, in the file's order."""
        return self.table.units

    def job(self, name: str) -> JobUnit:
        """The job called ``name``; :class:`KeyError` if there is none, or a reload removed it (a run of its
        own may still finish: it is recorded, but the job takes nothing more)."""
        if self.table.leaving(name):
            raise KeyError(name)
        return self.units[name]

    def jobs(self) -> Mapping[str, JobUnit]:
        """Every job served, in the file's order (not those a reload removed)."""
        version, served = self._served
        if version != self.table.version:
            served = {name: unit for name, unit in self.units.items() if not self.table.leaving(name)}
            self._served = (self.table.version, served)
        return served

    def jobs_status_json(self, head: bytes = b"[", tail: bytes = b"]") -> bytes:
        """Every served job's status document as of now, each encoded once per change, between ``head`` and
        ``tail`` (a JSON array by default)."""
        jobs, key = self.jobs, (self.table.version, head, tail)
        return self._statuses.at(self.clock.now(), key, lambda: _status_caches(jobs()), head, tail)

    @property
    def unit(self) -> JobUnit:
        """The default job's unit."""
        return self.units[self.default_job]

    @property
    def view(self) -> JobUnit:
        """The default job's read-only status view (orchestrator/http/ports.py ``StatusView``)."""
        return self.unit

    @property
    def commands(self) -> JobUnit:
        """The default job's commands (orchestrator/http/ports.py ``Commands``)."""
        return self.unit

    # ------------------------------------------------------------- the default job, by its parts' names
    @property
    def runner(self) -> Runner:
        return self.unit.runner

    @property
    def hub(self) -> Hub:
        return self.unit.hub

    @property
    def notifier(self) -> Notifier:
        return self.table.notifiers[self.default_job]

    @property
    def listeners(self) -> list[RunListener]:
        """The default job's run listeners (its runner holds this same list)."""
        return self.table.listeners[self.default_job]

    async def request_run(self, source: Source, reason: str = "") -> Trigger:
        return await self.unit.request_run(source, reason)

    def cancel(self, reason: str) -> str | None:
        return self.unit.cancel(reason)

    def status(self) -> dict[str, Any]:
        return self.unit.status()


def _status_caches(jobs: Mapping[str, JobUnit]) -> list[tuple[StatusCache, object]]:
    return [(unit.encoded, unit.runner.state) for unit in jobs.values()]


async def _trim_once_read(units: list[JobUnit]) -> None:
    """Once every job has read its history (the last of the start's work), hand the C heap's free pages back to
    the system: the start frees much more than idle needs again (the history's check, the reads of recent runs,
    the jobs file), and glibc's ``malloc`` would keep it (about 0.8 MiB)."""
    await asyncio.gather(*(unit.recent.ready() for unit in units))
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim, or its own way
        ctypes.CDLL(None).malloc_trim(0)
