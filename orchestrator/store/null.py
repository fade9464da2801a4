"""The history the service runs with when its own could not be opened: runs matter more than their records.

It writes nothing (nothing is owed: the failure to open was said once, at start), knows of no unfinished run
and no recent one (estimates and checks go without), and refuses what is asked of the history itself (the
API's pages, one run, a run's steps, the step figures, pruning) with
:class:`~orchestrator.store.api.HistoryNotOpened`: an empty answer there would say the runs are gone, and
pruning logs by it would remove every log.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.core.events import RunStatus
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import Step
from orchestrator.store.api import HistoryNotOpened, Page, PrunedRun, StoredRun


class NullHistory:
    """A :class:`~orchestrator.store.api.RunHistory` with nothing behind it."""

    def __init__(self, location: str) -> None:
        self._location = location

    @property
    def location(self) -> str:
        return self._location

    def record(self, run: RunRecord, log_path: str | None = None, steps: tuple[Step, ...] | None = None) -> None:
        pass

    @property
    def owed(self) -> int:
        return 0

    def write_owed(self) -> int:
        return 0

    def get(self, run_id: str) -> StoredRun | None:
        raise HistoryNotOpened

    def steps(self, run_id: str) -> tuple[Step, ...] | None:
        raise HistoryNotOpened

    def completed_steps(self, limit: int, *, job: str | None = None) -> tuple[tuple[StoredRun, tuple[Step, ...]], ...]:
        raise HistoryNotOpened

    def unfinished(self, *, job: str | None = None) -> list[RunRecord]:
        return []

    def page(self, *, limit: int = 50, cursor: str | None = None, job: str | None = None) -> Page:
        raise HistoryNotOpened

    def newest(self, limit: int, *, status: RunStatus, within: int, job: str | None = None) -> tuple[StoredRun, ...]:
        return ()

    def run_ids(self) -> frozenset[str]:
        raise HistoryNotOpened

    def count(self, *, job: str | None = None) -> int:
        raise HistoryNotOpened

    def prune(self, *, keep: int, older_than: datetime | None = None) -> list[PrunedRun]:
        raise HistoryNotOpened


NO_HISTORY = NullHistory("(no history)")
"""For parts built without a history (tests, tools): stateless, so one serves all."""
