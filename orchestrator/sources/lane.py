"""A lane: calls that run one at a time, in the order given, on the threads of a pool shared with other lanes.
Each job's triggers folder has one (a folder's work must never overlap: a look and a removal of the same
files), and a hundred jobs need not hold a hundred idle threads for it."""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

SHARED_POOL = ThreadPoolExecutor(thread_name_prefix="trigger-folders")
"""The threads every lane of the process runs on (threads start as work comes, up to the pool's default)."""


class Lane(Executor):
    """An executor whose calls run one after another on ``pool``. After :meth:`shutdown`, calls already given
    still run; new ones raise ``RuntimeError``, as a shut-down executor's do."""

    def __init__(self, pool: Executor = SHARED_POOL) -> None:
        self._pool = pool
        self._calls: collections.deque[tuple[Future[Any], Callable[[], Any]]] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False
        self._shut = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._calls.append((future, functools.partial(fn, *args, **kwargs)))
            start, self._draining = not self._draining, True
        if start:
            self._pool.submit(self._drain)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._calls:
                    self._draining = False
                    return
                future, call = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # handed to whoever waits on the call, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
