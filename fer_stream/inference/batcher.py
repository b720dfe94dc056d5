"""Dynamic batching: flush at ``max_size`` items or ``max_wait_s`` after the first, whichever first.

Pure logic with an injectable clock, so the policy is unit-tested without
processes or sleeps. A batch mixes cameras freely: the inference worker keeps
no per-camera state, each item carries its own routing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, max_size: int, max_wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._items: list[T] = []
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> list[T] | None:
        """Queue one item; returns the batch when this item filled it."""
        if not self._items:
            self._first_at = self._clock()
        self._items.append(item)
        if len(self._items) >= self.max_size:
            return self._take()
        return None

    def due(self) -> list[T] | None:
        """The pending batch if its oldest item has waited ``max_wait_s``, else None."""
        wait = self.seconds_until_due()
        if self._items and wait is not None and wait <= 0:
            return self._take()
        return None

    def seconds_until_due(self) -> float | None:
        """Seconds until the pending batch must go; None when nothing is pending."""
        if self._first_at is None:
            return None
        return max(0.0, self._first_at + self.max_wait_s - self._clock())

    def flush(self) -> list[T]:
        """Everything pending, now: the worker's stop answers the faces it has taken."""
        return self._take() if self._items else []

    def _take(self) -> list[T]:
        batch, self._items, self._first_at = self._items, [], None
        return batch
