"""What the runner tells its listeners: a run started, a run finished. Frozen events, and the protocol a
listener implements (history-like consumers: notifications, metrics, retention, the recent runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.records import RunRecord
from orchestrator.core.steps import Step


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run is saved as running; its job is about to be spawned."""

    run: RunRecord


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended (or was found, at start-up, to have been interrupted) and is saved with its outcome."""

    run: RunRecord
    steps: tuple[Step, ...] = ()
    """The run's steps, as recorded with it (none for a run whose job reported no step, or one interrupted)."""


RunEvent = RunStarted | RunFinished


class RunListener(Protocol):
    """Told of every run's start and end. Called on the event loop, in the runner's own turn: it must return
    at once and do any slow work in a task."""

    def run_started(self, event: RunStarted) -> None: ...

    def run_finished(self, event: RunFinished) -> None: ...
