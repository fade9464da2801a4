"""The state file: :class:`~orchestrator.core.records.State` as one JSON document, written atomically."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from orchestrator.core.records import State
from orchestrator.core.streak import Streak
from orchestrator.disk.atomic import InvalidDocument, read_json_object, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE_NAME = "orchestrator_state.json"


class StateStore:
    """Loads and saves :class:`State`. A save that fails is logged once per streak and retried next time:
    the service keeps working from memory rather than dying because the disk is full."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saves = Streak()
        self.last_error = ""
        """Why the last save failed (empty after a good one): said to whoever was refused for it."""

    def load(self) -> State:
        try:
            doc = read_json_object(self.path)
        except FileNotFoundError:
            return State()
        except (InvalidDocument, OSError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.warning("state file %s is unusable (%s); moved it to %s and starting fresh", self.path, exc, aside)
            return State()
        return State.from_json(doc)

    def save(self, state: State) -> bool:
        try:
            write_json_atomic(self.path, state.to_json())
        except (OSError, ValueError) as exc:
            if self._saves.failed():
                log.error("cannot save state to %s: %s (keeping it in memory; will retry)", self.path, exc)
            self.last_error = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return False
        if self._saves.recovered():
            log.info("state saved to %s again", self.path)
        self.last_error = ""
        return True
