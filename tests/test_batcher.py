"""The dynamic batching policy: size, time, and cameras mixed in one batch."""

from __future__ import annotations

import pytest

from fer_stream.inference.batcher import Batcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_flushes_when_full_before_the_deadline() -> None:
    clock = FakeClock()
    batcher: Batcher[int] = Batcher(max_size=3, max_wait_s=0.010, clock=clock)
    assert batcher.add(1) is None
    assert batcher.add(2) is None
    assert batcher.add(3) == [1, 2, 3]
    assert len(batcher) == 0
    assert batcher.seconds_until_due() is None


def test_flushes_by_time_counted_from_the_first_item() -> None:
    clock = FakeClock()
    batcher: Batcher[str] = Batcher(max_size=32, max_wait_s=0.010, clock=clock)
    batcher.add("a")
    clock.now += 0.006
    batcher.add("b")
    assert batcher.due() is None
    assert batcher.seconds_until_due() == pytest.approx(0.004)
    clock.now += 0.004
    assert batcher.due() == ["a", "b"]
    assert batcher.due() is None


def test_next_batch_deadline_restarts_with_its_own_first_item() -> None:
    clock = FakeClock()
    batcher: Batcher[int] = Batcher(max_size=2, max_wait_s=0.010, clock=clock)
    batcher.add(1)
    clock.now += 0.009
    assert batcher.add(2) == [1, 2]
    batcher.add(3)
    clock.now += 0.009
    assert batcher.due() is None
    clock.now += 0.001
    assert batcher.due() == [3]


def test_mixes_cameras_in_arrival_order() -> None:
    clock = FakeClock()
    batcher: Batcher[tuple[str, int]] = Batcher(max_size=4, max_wait_s=1.0, clock=clock)
    items = [("lobby", 1), ("door", 7), ("lobby", 2), ("yard", 3)]
    out = [batcher.add(i) for i in items]
    assert out[:3] == [None, None, None]
    assert out[3] == items


def test_zero_wait_flushes_on_the_next_check() -> None:
    batcher: Batcher[int] = Batcher(max_size=8, max_wait_s=0.0, clock=FakeClock())
    batcher.add(5)
    assert batcher.due() == [5]


def test_flush_returns_the_partial_batch() -> None:
    batcher: Batcher[int] = Batcher(max_size=8, max_wait_s=5.0, clock=FakeClock())
    assert batcher.flush() == []
    batcher.add(1)
    assert batcher.flush() == [1]


@pytest.mark.parametrize("size,wait", [(0, 0.01), (4, -1.0)])
def test_rejects_nonsense_settings(size: int, wait: float) -> None:
    with pytest.raises(ValueError):
        Batcher(max_size=size, max_wait_s=wait)
