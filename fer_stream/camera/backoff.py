"""Reconnect delays: exponential, capped, with jitter, so many cameras that lost the same server do not retry in lockstep."""

from __future__ import annotations

import random


class Backoff:
    """``next()`` gives initial, 2x, 4x, ... up to ``maximum``, each scaled by a random factor in [1 - jitter, 1]."""

    def __init__(self, initial_s: float, maximum_s: float, *, jitter: float = 0.5, rng: random.Random | None = None):
        if not 0 < initial_s <= maximum_s:
            raise ValueError(f"backoff needs 0 < initial_s <= maximum_s, got {initial_s} and {maximum_s}")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._failures = 0

    def next(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * 2.0 ** min(self._failures, 64))
        self._failures += 1
        return ceiling * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """After a success the next failure starts again from ``initial_s``."""
        self._failures = 0
