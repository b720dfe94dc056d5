"""CPU slots: at most one camera per core works on a frame at a time.

Past capacity, a dozen camera processes all runnable at once share two cores
by time slices: each frame's detection then takes many times its CPU cost in
wall time, and capture-to-result latency grows with the number of cameras. With
a slot per core, a camera that has a frame waits (without using the CPU) until a
core is free, and then runs it at full speed: the same frames get processed,
sooner. Measured in docs/benchmarks.md#stream: the capture-to-result p99 at 1.5x the sustained load
halves.

A semaphore counts the free slots; an array records which process holds which,
so the supervisor can give back the slot of a camera killed while holding it.
"""

from __future__ import annotations

import os
from typing import Any

#: How long the ownership table's lock may be held (microseconds in practice) before it counts as a dead holder's.
TABLE_LOCK_GRACE_S = 0.2


class CpuSlots:
    """Shared by the supervisor and every camera process (created in the supervisor, passed at spawn)."""

    def __init__(self, ctx: Any, count: int) -> None:
        self.count = count
        self._free = ctx.Semaphore(count)
        self._table_lock = ctx.Lock()
        self._holders = ctx.Array("i", count, lock=False)

    def acquire(self, timeout: float) -> int | None:
        """A slot's index, or None when no core freed up within ``timeout`` seconds."""
        if not self._free.acquire(timeout=timeout):
            return None
        with self._table():
            for index in range(self.count):
                if self._holders[index] == 0:
                    self._holders[index] = os.getpid()
                    return index
        self._free.release()  # cannot happen while the table and the count agree
        return None

    def release(self, index: int) -> None:
        with self._table():
            self._holders[index] = 0
        self._free.release()

    def free_dead(self, pid: int) -> int:
        """The supervisor, after a camera process died: give back the slots it held. Returns how many."""
        freed = 0
        with self._table():
            for index in range(self.count):
                if self._holders[index] == pid:
                    self._holders[index] = 0
                    freed += 1
        for _ in range(freed):
            self._free.release()
        return freed

    def _table(self) -> _TableLock:
        return _TableLock(self._table_lock)


class _TableLock:
    """The ownership table's lock; one a dead process left held is taken over after TABLE_LOCK_GRACE_S."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.acquire(timeout=TABLE_LOCK_GRACE_S)  # not free by then: its holder died inside; carry on

    def __exit__(self, *exc: object) -> None:
        try:
            self.lock.release()
        except ValueError:
            pass  # released more often than acquired after a takeover: harmless for a plain lock
