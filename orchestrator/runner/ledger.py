"""The runner's persisted state and the one store it is saved through: every part of the runner reads and
changes the same :class:`State`, and every change is saved by the same writer."""

from __future__ import annotations

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
