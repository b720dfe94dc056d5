"""Bounded inter-process queues that drop the oldest item instead of blocking.

A camera must never stall because the inference worker (or the supervisor) is
slow or dead: when a queue is full the *producer* removes the oldest item,
counts it in ``fer_queue_dropped_total{queue}`` and puts the new one. Old work
is the least useful work in a live stream.

Consumers wait for data on the queue's pipe *without* holding its read lock
(``wait``), so a consumer killed while idle cannot leave the lock held for its
successor. ``release_stale_locks`` repairs the rarer case of a process killed
inside a get/put; the supervisor calls it after a child died. A queue with one
writer process whose reader keeps no write end (``reader_only``) survives that
writer dying in the middle of a message.
"""

from __future__ import annotations

import multiprocessing.connection
import queue as queue_module
from multiprocessing.context import BaseContext
from typing import Generic, TypeVar

from fer_stream.metrics import QUEUE_DEPTH, QUEUE_DROPPED

T = TypeVar("T")

#: Attempts at "drop one, put one" before giving up on an item (other producers race for the slot).
_PUT_ATTEMPTS = 4
#: Longest a producer waits for the oldest item to become readable before retrying.
_FULL_WAIT_S = 0.05


class BoundedQueue(Generic[T]):
    """A named ``multiprocessing.Queue`` with drop-oldest ``put``; picklable to spawned children."""

    def __init__(self, ctx: BaseContext, name: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"queue {name!r}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self._queue = ctx.Queue(maxsize)

    def put(self, item: T) -> bool:
        """Put without blocking, dropping the oldest items if full. False if the item itself was dropped."""
        for _ in range(_PUT_ATTEMPTS):
            try:
                self._queue.put_nowait(item)
                return True
            except queue_module.Full:
                # The oldest item may still be in the feeder thread on its way to the pipe: wait briefly.
                if self.wait(_FULL_WAIT_S) and self.get_nowait() is not None:
                    QUEUE_DROPPED.labels(queue=self.name).inc()
                # else a consumer took one meanwhile: retry the put
        QUEUE_DROPPED.labels(queue=self.name).inc()
        return False

    def get_nowait(self) -> T | None:
        try:
            return self._queue.get_nowait()
        except queue_module.Empty:
            return None
        except (EOFError, OSError, ValueError):
            return None  # queue closed at shutdown

    def drain(self, limit: int) -> list[T]:
        """Up to ``limit`` items that are ready now."""
        items: list[T] = []
        while len(items) < limit:
            item = self.get_nowait()
            if item is None:
                break
            items.append(item)
        return items

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until data may be ready, holding no lock."""
        return bool(multiprocessing.connection.wait([self._queue._reader], timeout))  # type: ignore[attr-defined]

    def qsize(self) -> int:
        try:
            return self._queue.qsize()
        except (NotImplementedError, OSError, ValueError):
            return 0

    def record_depth(self) -> int:
        """Set ``fer_queue_depth`` to what waits now. One process (the supervisor, which owns every queue) calls
        it for all of them, so the gauge is never a producer's stale count of a queue drained elsewhere."""
        depth = self.qsize()
        QUEUE_DEPTH.labels(queue=self.name).set(depth)
        return depth

    def detach_on_exit(self) -> None:
        """Let this process exit without flushing unsent items (the peer may be gone)."""
        self._queue.cancel_join_thread()

    def flush(self, timeout: float) -> bool:
        """Close this end and wait up to ``timeout`` s until everything put here is in the pipe.

        For a process about to exit with messages that must arrive (a camera's
        last alerts): ``detach_on_exit`` alone may drop what the feeder thread
        has not yet written, and an unbounded join could hang on a dead peer.
        Returns False if the timeout passed first.
        """
        self._queue.close()
        feeder = self._queue._thread  # type: ignore[attr-defined]  # None when nothing was ever put
        if feeder is None:
            return True
        feeder.join(timeout)
        return not feeder.is_alive()

    def reader_only(self) -> None:
        """Close this process's write end, once the queue's one writer process has started.

        The writer's death then leaves the pipe at end of file: a message it left half-written reads as
        nothing (``get_nowait`` returns None) instead of blocking the reader forever for the rest.
        """
        self._queue._writer.close()  # type: ignore[attr-defined]

    def release_stale_locks(self, reader: bool, writer: bool, grace_s: float = 1.0) -> list[str]:
        """Free locks a killed process may have held; returns the names of the locks freed.

        A live holder keeps these locks for microseconds, so one not free within
        ``grace_s`` belongs to the dead process. Call only right after a child died.
        """
        freed = []
        for flag, label, lock in ((reader, "read", self._queue._rlock), (writer, "write", self._queue._wlock)):  # type: ignore[attr-defined]
            if not flag or lock is None:
                continue
            if lock.acquire(timeout=grace_s):
                lock.release()
            else:
                lock.release()
                freed.append(label)
        return freed

    def close(self) -> None:
        self._queue.close()
        self._queue.cancel_join_thread()
