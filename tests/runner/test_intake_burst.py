"""A burst's batch of triggers saved on a worker thread: its senders hear back only once it is stored, a refused
save leaves them with their senders, and a small batch is still saved on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from orchestrator.core.events import Receipt, Source, Trigger
from orchestrator.runner.intake import OFF_LOOP_BATCH, Intake
from orchestrator.runner.ledger import Ledger
from tests.fakes import T0, MemoryStates

WAIT = 10.0


class Rig:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Trigger] = asyncio.Queue()
        self.store = MemoryStates(gated=True, wait=WAIT)
        self.ledger = Ledger(self.store)
        self.intake = Intake(self.queue, self.ledger, lambda: None)

    def send(self, count: int, *, receipt: Receipt | None = None) -> Receipt:
        receipt = receipt or Receipt()
        for n in range(count):
            self.queue.put_nowait(Trigger(Source.FILE, T0, f"file-{n}", receipt=receipt))
        return receipt

    async def writing(self) -> None:
        assert await asyncio.to_thread(self.store.writing.wait, WAIT), "the batch's save never began"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    task = asyncio.create_task(made.intake.serve())
    yield made
    made.store.gate.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_burst_is_acknowledged_only_once_its_save_on_a_thread_is_stored(rig: Rig) -> None:
    receipt = rig.send(OFF_LOOP_BATCH)
    await rig.writing()
    assert not receipt.settled, "told before its save was stored"
    assert rig.store.saved == [], "the save is the thread's"
    rig.store.gate.set()
    assert await asyncio.wait_for(receipt.saved(), WAIT)
    assert [s.pending_count for s in rig.store.on_thread] == [OFF_LOOP_BATCH]
    assert rig.intake.triggers_received[Source.FILE] == OFF_LOOP_BATCH


async def test_a_small_batch_is_saved_on_the_loop(rig: Rig) -> None:
    receipt = rig.send(1)
    assert await asyncio.wait_for(receipt.saved(), WAIT)
    assert rig.store.on_thread == [] and [s.pending_count for s in rig.store.saved] == [1]


@pytest.mark.parametrize(
    ("moved_on", "refuse_after", "saved", "pending"),
    [
        pytest.param(False, False, False, 0, id="refused, nothing changed meanwhile: the batch is taken back"),
        pytest.param(True, False, True, OFF_LOOP_BATCH, id="refused, the state moved on: its own save holds it"),
        pytest.param(True, True, False, 0, id="refused, the state moved on, refused again: the batch taken back"),
    ],
)
async def test_a_refused_thread_save(rig: Rig, moved_on: bool, refuse_after: bool, saved: bool, pending: int) -> None:
    receipt = rig.send(OFF_LOOP_BATCH)
    await rig.writing()
    if moved_on:
        rig.ledger.state = replace(rig.ledger.state, not_before=T0)  # e.g. a run ended meanwhile
    rig.store.refuse_thread = True
    rig.store.refuse = refuse_after
    rig.store.gate.set()
    assert await asyncio.wait_for(receipt.saved(), WAIT) is saved
    assert rig.ledger.state.pending_count == pending
    assert all(t.receipt is not receipt for t in rig.ledger.state.pending) or saved
    if moved_on:
        assert rig.ledger.state.not_before == T0, "the change made meanwhile is kept"
    assert rig.intake.triggers_received[Source.FILE] == pending


async def test_unwaited_triggers_of_a_refused_burst_stay_pending(rig: Rig) -> None:
    rig.queue.put_nowait(Trigger(Source.TIMER, T0))
    receipt = rig.send(OFF_LOOP_BATCH - 1)
    await rig.writing()
    rig.store.refuse_thread = True
    rig.store.gate.set()
    assert not await asyncio.wait_for(receipt.saved(), WAIT)
    assert rig.ledger.state.pending_count == 1 and rig.store.saved[-1].pending_count == 1


async def test_no_run_may_begin_while_a_batch_is_undecided(rig: Rig) -> None:
    """The run loop waits on ``decided`` before it begins a run: a run begun from a batch whose save is then
    refused would run triggers whose files stay, to be taken (and run) again."""
    assert rig.intake.decided.is_set()
    receipt = rig.send(OFF_LOOP_BATCH)
    await rig.writing()
    assert not rig.intake.decided.is_set(), "a run could begin from a batch not yet on disk"
    rig.store.refuse_thread = True
    rig.store.gate.set()
    assert not await asyncio.wait_for(receipt.saved(), WAIT)
    assert rig.intake.decided.is_set() and rig.ledger.state.pending_count == 0
