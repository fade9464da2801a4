"""A trigger that finds the run loop idle begins its run in the save that takes it: one state write between
the trigger and the spawn. Not when a slot is busy, not when that save is refused; and a run begun that way but
never spawned (the service stops first) gives its triggers back as pending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import Receipt, Source, Trigger
from orchestrator.core.records import State
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.schedule import Schedule
from orchestrator.live.progress import ProgressFile
from orchestrator.runner import Runner
from orchestrator.runner.handoff import Handoff
from orchestrator.runner.ledger import Ledger
from orchestrator.runner.slots import Slots
from tests.fakes import T0, MemoryStates, ScriptedJob, settle


class Bench:
    def __init__(self, tmp_path: Path, slots: Slots) -> None:
        self.queue: asyncio.Queue[Trigger] = asyncio.Queue()
        self.job = ScriptedJob()
        self.store = MemoryStates()
        self.ended = asyncio.Event()
        self.runner = Runner(
            queue=self.queue,
            job=self.job,
            clock=FakeClock(T0),
            schedule=Schedule(timedelta(minutes=30), timedelta(minutes=5)),
            store=self.store,
            progress_file=ProgressFile(tmp_path / "snapshot_progress.json"),
            slots=slots,
            listeners=[self],
        )

    def run_started(self, event: RunStarted) -> None:
        pass

    def run_finished(self, event: RunFinished) -> None:
        self.ended.set()

    def send(self, reason: str) -> Receipt:
        receipt = Receipt()
        self.queue.put_nowait(Trigger(Source.FILE, T0, reason, receipt=receipt))
        return receipt


@pytest.fixture
async def slots() -> Slots:
    return Slots(1)


@pytest.fixture
async def bench(tmp_path: Path, slots: Slots) -> AsyncIterator[Bench]:
    made = Bench(tmp_path, slots)
    made.runner.recover()
    task = asyncio.create_task(made.runner.serve())
    await settle()
    yield made
    made.runner.stop_starting()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_an_idle_runner_takes_the_trigger_and_begins_its_run_in_one_save(bench: Bench) -> None:
    before = len(bench.store.saved)
    receipt = bench.send("run-now")
    run = await bench.job.next_start()
    assert await receipt.saved()
    first = bench.store.saved[before]
    assert first.current is not None and first.current.run_id == run.ctx.run_id, "the run is in the first save"
    assert first.pending == () and [t.reason for t in first.current.triggers] == ["run-now"]
    before_pid = [s for s in bench.store.saved[before:] if s.current is not None and s.current.pid is None]
    assert len(before_pid) == 1, "one save between the trigger and the spawn (the next one records the pid)"
    run.finish()


async def test_a_refused_save_begins_nothing_and_the_trigger_stays_with_its_sender(bench: Bench) -> None:
    bench.store.refuse = True
    receipt = bench.send("run-now")
    assert not await receipt.saved()
    await settle()
    assert bench.job.started.empty() and bench.runner.state.current is None
    assert bench.runner.state.pending_count == 0


async def test_a_busy_slot_leaves_the_trigger_pending_until_the_slot_is_free(bench: Bench, slots: Slots) -> None:
    slots.take()  # another job's run holds the one slot
    receipt = bench.send("run-now")
    assert await receipt.saved()
    await settle()
    assert bench.job.started.empty()
    assert bench.store.saved[-1].current is None and bench.store.saved[-1].pending_count == 1
    slots.release()
    run = await bench.job.next_start()
    assert run.ctx.reason == "run-now"
    run.finish()


async def test_a_run_begun_but_never_spawned_gives_its_triggers_back() -> None:
    store, slots, work = MemoryStates(), Slots(1), asyncio.Event()
    ledger = Ledger(store)
    handoff = Handoff(ledger, slots, work, FakeClock(T0), job="snapshot", stopping=lambda: False)
    waiting = asyncio.create_task(handoff.wait())
    await settle()
    offered = handoff.offer(State().with_trigger(Trigger(Source.FILE, T0, "run-now")))
    assert offered is not None
    ledger.state = offered[0]
    assert ledger.save() and ledger.state.current is not None
    offered[1]()
    assert handoff.offer(ledger.state) is None, "one run at a time"
    waiting.cancel()  # the service stops before the loop takes the run
    await asyncio.gather(waiting, return_exceptions=True)
    last = store.saved[-1]
    assert last.current is None and [t.reason for t in last.pending] == ["run-now"] and last.pending_count == 1
    assert slots.free_now, "its slot is free again"


async def test_a_cancel_between_the_save_and_the_spawn_ends_the_run_cancelled(bench: Bench) -> None:
    receipt = bench.send("run-now")
    cancelled: list[str | None] = []
    # Told in the intake's own turn (a future's callbacks run before the loop's next wake-up): the run is
    # saved as current, its job not spawned yet.
    receipt._saved.add_done_callback(lambda _: cancelled.append(bench.runner.cancel("changed my mind")))
    async with asyncio.timeout(10):
        await bench.ended.wait()
    last = bench.runner.state.last_run
    assert last is not None
    assert cancelled == [last.run_id] and last.status.value == "cancelled", last
    assert all(run.stopped.is_set() for run in bench.job.runs), "a job spawned at all was stopped"
