"""The service's jobs: one unit per job with its notifier, its run listeners and its exit stack; the chains
between jobs; and what a reload does to them (start the added, retire the removed once their run ends, replace
the changed from their next run), losing nothing pending."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from orchestrator.config import Settings
from orchestrator.core.events import Source, Trigger
from orchestrator.disk.datadir import make_job_folder
from orchestrator.job.childwatch import ChildWatch
from orchestrator.job.protocol import Job
from orchestrator.jobsfile.plan import Plan, plan
from orchestrator.jobsfile.spec import JobSpec
from orchestrator.ops.chains import Chains
from orchestrator.ops.metrics import Metrics
from orchestrator.ops.notify import Notifier, webhooks_for
from orchestrator.runner import RunListener
from orchestrator.runner.orphans import close_orphans
from orchestrator.unit import JobUnit, Shared

log = logging.getLogger(__name__)


class JobTable:
    """Every job's unit, by name, in the file's order. ``first``: listeners every job's runner tells first
    (retention); ``job_for``: a job's own :class:`Job` in place of its subprocess (tests), or ``None``;
    ``on_end``: told of a background task that ends by itself; ``metrics``: told of every job's runs, and of
    each job as it is built."""

    def __init__(
        self,
        settings: Settings,
        shared: Shared,
        *,
        default_job: str,
        first: tuple[RunListener, ...],
        job_for: Callable[[str], Job | None],
        on_end: Callable[[asyncio.Task[None]], None],
        names: set[str],
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._shared = shared
        self._default_job = default_job
        self._first = first
        self._job_for = job_for
        self._on_end = on_end
        self._names = names
        """Every job's name ever served: their folders in the triggers folder are not trigger files."""
        self.chains = Chains(self._followers, self._trigger_after)
        self.units: dict[str, JobUnit] = {}
        self.version = 0
        """Counts every change of the units or of which are leaving (what the service serves)."""
        self.notifiers: dict[str, Notifier] = {}
        self.listeners: dict[str, list[RunListener]] = {}
        """Each job's run listeners: its runner holds the same list."""
        self._stacks: dict[str, contextlib.AsyncExitStack] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._next: dict[str, JobSpec | None] = {}
        self._children = ChildWatch()
        """How the jobs' exits are heard: from the start to once every runner has ended its job."""
        """Jobs being retired (a run of theirs goes on), and what replaces each once it ends (``None``: nothing)."""
        self._stopping = False

    # ------------------------------------------------------------------------------------------ building
    def build(self, spec: JobSpec) -> JobUnit:
        listeners = list(self._first)
        unit = JobUnit(spec, self._shared, job=self._job_for(spec.name), listeners=listeners)
        notifier = Notifier(
            self._settings,
            clock=self._shared.clock,
            recent=unit.recent,
            state=lambda: unit.state,
            schedule=unit.timing,
            publish=unit.publish,
            job=spec.name,
            hooks=webhooks_for(self._settings, spec.config),
            api="/api/snapshot" if spec.name == self._default_job else f"/api/jobs/{spec.name}",
        )
        unit.checks = notifier
        unit.recent.watch(notifier.recent_changed)
        listeners.extend((notifier, self._metrics))
        self._metrics.job_added(spec.name, unit)
        self.listeners[spec.name] = listeners
        self.units[spec.name] = unit
        self.version += 1
        self.notifiers[spec.name] = notifier
        self._names.add(spec.name)
        return unit

    async def stop_leftovers(self) -> None:
        """At the service's start: what earlier services left of every job's runs is stopped before any job
        starts, so that a job's first run never goes beside another job's leftover (max-parallel holds across a
        crash too), all at once (a crash with many runs going must not cost one kill grace after another). A job
        the file no longer names has no unit: its run in flight is closed and its processes stopped too."""
        self._children.start()
        shared, settings = self._shared, self._settings
        assert shared.states is not None
        orphans = close_orphans(
            shared.states,
            self.units,
            clock=shared.clock,
            history=shared.history,
            logs=shared.logs,
            data_dir=settings.store.data_dir,
            kill_grace=settings.job.kill_grace_seconds,
        )
        await asyncio.gather(orphans, *(unit.runner.stop_leftover() for unit in self.units.values()))

    async def start(self, unit: JobUnit) -> None:
        folder = unit.spec.triggers_dir
        if folder != self._settings.job.triggers_dir:
            try:
                make_job_folder(folder)
            except NotADirectoryError:
                pass  # a link or a file in its place: the job's folder source says so, once, and refuses it
            except OSError as exc:
                log.error("job %s: cannot make its triggers folder %s: %s", unit.spec.name, folder, exc.strerror or exc)
        stack = contextlib.AsyncExitStack()
        self._stacks[unit.spec.name] = stack
        notifier = self.notifiers[unit.spec.name]
        # Stopped after the runner: its last run's end is queued; a short grace.
        stack.push_async_callback(notifier.stop)
        await unit.open(stack)
        notifier.start()  # before the runner: it tells a recovered run's end at once
        unit.serve(stack, self._on_end)

    def close_intake(self) -> None:
        self._stopping = True
        for unit in self.units.values():
            unit.close_intake()

    async def stop(self) -> None:
        """Every job's runner at once: each ends its running job within its own grace."""
        self._stopping = True
        for task in self._retiring:
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        stacks, self._stacks = list(self._stacks.values()), {}
        await asyncio.gather(*(stack.aclose() for stack in stacks))
        self._children.close()
        if self._shared.states is not None:
            self._shared.states.close()  # the whole state in its file again, for whoever reads it next

    # -------------------------------------------------------------------------------------------- reload
    async def apply(self, wanted: Mapping[str, JobSpec]) -> Plan:
        """Make the jobs ``wanted``: added ones start now, removed ones take no more triggers and go once their
        run ends (their history stays), changed ones are replaced once their run ends."""
        for name in self._next:  # still being retired: it ends as this file says, whatever the last said
            self._next[name] = wanted.get(name)
            self.version += 1
        running = {name: unit.spec for name, unit in self.units.items() if name not in self._next}
        change = plan(running, {name: spec for name, spec in wanted.items() if name not in self._next})
        for name in change.removed:
            self._retire(name, None)
        for name in change.changed:
            self._retire(name, wanted[name])
        for name in change.added:
            await self.start(self.build(wanted[name]))
        self.units = {name: self.units[name] for name in (*wanted, *self.units) if name in self.units}
        self.version += 1
        return change

    def _retire(self, name: str, successor: JobSpec | None) -> None:
        """Stop the job's unit once its run (if one goes) has ended, then start ``successor`` in its place."""
        # A trigger from now on is saved for the successor (a removed job's stays in the state file).
        self.units[name].close_intake(end_streams=False)
        self._next[name] = successor
        self.version += 1
        task = asyncio.create_task(self._replace(self.units[name]), name=f"retire-{name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _replace(self, unit: JobUnit) -> None:
        name = unit.spec.name
        await unit.idle()
        stack = self._stacks.pop(name, None)
        if stack is not None:
            await stack.aclose()
        successor = self._next.pop(name, None)
        self.version += 1
        if self._stopping:
            unit.hub.close()
            return
        if successor is None:
            self.units.pop(name, None)
            self.version += 1
            unit.hub.close()
            log.info("job %s removed; its history stays", name)
            return
        await self.start(self.build(successor))
        unit.hub.close()  # its streams' clients come back to the successor
        log.info("job %s changed: its next run is as the file says now", name)

    def leaving(self, name: str) -> bool:
        """Whether a reload removed the job (its unit stays until a run of its own has ended)."""
        return name in self._next and self._next[name] is None

    async def settled(self) -> None:
        """Until every job being retired is gone or replaced (for the tests)."""
        while self._retiring:
            await asyncio.wait(set(self._retiring))

    # -------------------------------------------------------------------------------------------- chains
    def _followers(self, name: str) -> list[str]:
        # A job being replaced keeps its triggers for its successor; one being removed takes none.
        followers = []
        for each, unit in self.units.items():
            spec = self._next.get(each, unit.spec)
            if spec is not None and name in spec.after:
                followers.append(each)
        return followers

    def _trigger_after(self, name: str, reason: str) -> None:
        unit = self.units.get(name)
        if unit is not None:
            unit.take(Trigger(Source.AFTER, self._shared.clock.now(), reason))
