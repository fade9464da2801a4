"""The one consumer of the trigger queue: coalescing, the run lifecycle, supervision and crash recovery.

:class:`Runner` is the room's face: the service builds it, calls :meth:`Runner.recover` once, then serves it;
the web reads its views and sends it commands (cancel, pause). Listeners hear of runs through
:class:`RunListener` with frozen :class:`RunStarted` / :class:`RunFinished` events."""

from orchestrator.core.runevents import RunFinished, RunListener, RunStarted
from orchestrator.runner.recording import HISTORY_RETRY
from orchestrator.runner.runner import Runner

__all__ = ["HISTORY_RETRY", "RunFinished", "RunListener", "RunStarted", "Runner"]
