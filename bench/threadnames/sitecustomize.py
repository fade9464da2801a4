"""Put on ``PYTHONPATH`` by ``bench/jobs.py`` for the idle phase only: each Python thread gives the kernel its
name (``/proc/PID/task/TID/comm``, 15 bytes) as it starts, which Python 3.11 does not do, so that the wakeups
counted per thread can be told apart (``watch-data``, ``trigger-folder_0``, ``asyncio_0``, ...; a thread nobody
named, by its class). One ``prctl`` per thread start; nothing else changes."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

PR_SET_NAME = 15

try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None

_bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _named(self: threading.Thread) -> None:
    if _prctl is not None:
        # A thread nobody named ("Thread-3") is told apart by its class (watchdog's emitters and readers).
        name = type(self).__name__ if self.name.startswith("Thread-") else self.name
        _prctl(PR_SET_NAME, name.encode(errors="replace")[:15], 0, 0, 0)
    _bootstrap_inner(self)


threading.Thread._bootstrap_inner = _named  # type: ignore[attr-defined]
