"""The runner's persisted state and the one store it is saved through: every part of the runner reads and
changes the same :class:`State`, and every change is saved by the same writer."""

from __future__ import annotations

import asyncio

from orchestrator.core.records import State
from orchestrator.store.api import StateStore


class Ledger:
    """Holds the state in memory; :meth:`save` puts it on disk (``False`` if the store refused it)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.state = State()
        """Empty until :meth:`load`: the constructor of the runner reads nothing."""

    def load(self) -> State:
        self.state = self._store.load()
        return self.state

    def save(self) -> bool:
        return self._store.save(self.state)

    async def save_off_loop(self) -> bool:
        """:meth:`save` with the writing on a worker thread: the state is taken now, and a save made meanwhile
        (on the loop, of a newer state) is written after it, never before (the store keeps that order).
        ``True`` once it, or a later save, is stored."""
        return await asyncio.to_thread(self._store.prepare(self.state))
