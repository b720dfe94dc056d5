"""Bounded queues drop the oldest item, count it, and never block the producer."""

from __future__ import annotations

import multiprocessing
import time

from prometheus_client import REGISTRY

from fer_stream.queues import BoundedQueue

CTX = multiprocessing.get_context("spawn")


def dropped(name: str) -> float:
    return REGISTRY.get_sample_value("fer_queue_dropped_total", {"queue": name}) or 0.0


def settle(q: BoundedQueue, n: int) -> None:
    """mp.Queue hands items to a feeder thread; wait until they are counted."""
    deadline = time.monotonic() + 10
    while q.qsize() < n and time.monotonic() < deadline:
        time.sleep(0.01)


def take(q: BoundedQueue, n: int) -> list:
    """Read ``n`` items (the feeder thread may still be writing them to the pipe)."""
    items: list = []
    deadline = time.monotonic() + 10
    while len(items) < n and time.monotonic() < deadline:
        q.wait(0.1)
        items += q.drain(n - len(items))
    return items


def test_full_queue_drops_oldest_and_counts() -> None:
    q: BoundedQueue[int] = BoundedQueue(CTX, "test-drop", maxsize=3)
    before = dropped("test-drop")
    for i in range(5):
        start = time.monotonic()
        assert q.put(i)
        assert time.monotonic() - start < 5  # never blocks (generous bound: this is not a timing test)
        settle(q, min(i + 1, 3))
    assert dropped("test-drop") - before == 2
    assert q.record_depth() == 3
    assert take(q, 3) == [2, 3, 4]
    assert q.drain(10) == []
    q.close()


def test_drain_respects_limit_and_empty_queue() -> None:
    q: BoundedQueue[str] = BoundedQueue(CTX, "test-drain", maxsize=10)
    assert q.get_nowait() is None
    assert not q.wait(0.01)
    for s in "abc":
        q.put(s)
    assert take(q, 2) == ["a", "b"]
    assert take(q, 1) == ["c"]
    assert q.drain(2) == []
    q.close()


def test_lock_left_by_a_killed_reader_is_released() -> None:
    q: BoundedQueue[int] = BoundedQueue(CTX, "test-locks", maxsize=4)
    q._queue._rlock.acquire()  # what a reader killed inside get() leaves behind
    assert q.release_stale_locks(reader=True, writer=False, grace_s=0.05) == ["read"]
    q.put(1)
    assert take(q, 1) == [1]
    assert q.release_stale_locks(reader=True, writer=True, grace_s=0.05) == []
    q.close()


def test_rejects_zero_size() -> None:
    try:
        BoundedQueue(CTX, "bad", maxsize=0)
    except ValueError as exc:
        assert "bad" in str(exc)
    else:
        raise AssertionError("maxsize 0 accepted")


def depth(name: str) -> float | None:
    return REGISTRY.get_sample_value("fer_queue_depth", {"queue": name})


def test_depth_is_what_waits_when_sampled_not_what_a_producer_last_saw() -> None:
    q: BoundedQueue[int] = BoundedQueue(CTX, "t-depth", 8)
    for i in range(3):
        q.put(i)
    settle(q, 3)
    assert q.record_depth() == 3 and depth("t-depth") == 3
    assert take(q, 3) == [0, 1, 2]
    assert q.record_depth() == 0 and depth("t-depth") == 0, "an emptied queue reads 0"
    q.put(9)
    settle(q, 1)
    assert depth("t-depth") == 0, "putting does not set the gauge; the supervisor samples it"
