"""A lane runs its calls one at a time in order on a shared pool, however many lanes share it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from orchestrator.sources.lane import Lane

WAIT = 10.0


def test_calls_of_one_lane_never_overlap_and_keep_their_order_while_lanes_share_two_threads() -> None:
    pool = ThreadPoolExecutor(max_workers=2)
    lanes = [Lane(pool) for _ in range(20)]
    inside = [0] * len(lanes)
    overlaps: list[int] = []
    done: list[list[int]] = [[] for _ in lanes]
    guard = threading.Lock()

    def work(lane: int, n: int) -> int:
        with guard:
            inside[lane] += 1
            if inside[lane] > 1:
                overlaps.append(lane)
        done[lane].append(n)
        with guard:
            inside[lane] -= 1
        return n * 2

    futures = [lane.submit(work, index, n) for n in range(50) for index, lane in enumerate(lanes)]
    wait(futures, timeout=WAIT)
    assert [f.result() for f in futures] == [n * 2 for n in range(50) for _ in lanes]
    assert overlaps == [] and done == [list(range(50))] * len(lanes)
    pool.shutdown()


def test_an_exception_reaches_the_caller_and_the_lane_goes_on() -> None:
    lane = Lane(ThreadPoolExecutor(max_workers=1))

    def boom() -> None:
        raise OSError("disk gone")

    failed, after = lane.submit(boom), lane.submit(lambda: "still here")
    with pytest.raises(OSError, match="disk gone"):
        failed.result(WAIT)
    assert after.result(WAIT) == "still here"


def test_after_shutdown_calls_given_run_and_new_ones_are_refused() -> None:
    gate = threading.Event()
    lane = Lane(ThreadPoolExecutor(max_workers=1))
    first = lane.submit(gate.wait, WAIT)
    queued = lane.submit(lambda: "closed")
    lane.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        lane.submit(lambda: None)
    gate.set()
    assert first.result(WAIT) is True and queued.result(WAIT) == "closed"
