"""Graceful overload: past capacity, every camera samples fewer frames, instead of faces being dropped.

Detecting a face costs far more than classifying it, so the cheapest loss is a
frame never sampled, not a face detected and then dropped from the full request
queue. Each camera governs its own sampling rate from two signals every camera
sees alike: how many faces wait for the shared classifier (the request queue's
depth), how long its own faces took from capture to result, and how much of the
last interval the camera spent working rather than waiting for its next frame
(near all of it: the CPU, not the classifier, is what is short). Behind on any,
it cuts its rate by a quarter; comfortably ahead on both, it climbs back by a
tenth of its configured rate a step (additive increase, multiplicative
decrease, as TCP shares a link), so cameras converge on equal shares and the
rate follows the load both ways. Camera processes also run at a lower CPU
priority than the inference worker, so the classifier is never starved, and
take a CPU slot per frame (fer_stream/camera/slots.py), so no more of them work
at once than there are cores.

Pure and driven by an injected clock, so it is unit-tested without processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Factor applied to the rate when behind, and share of the configured rate added back when ahead.
DECREASE = 0.75
INCREASE = 0.1
#: Share of its time a camera may spend processing before it counts as CPU-starved, and below which it may speed up.
MAX_BUSY = 0.9
AHEAD_BUSY = 0.7


@dataclass
class FpsGovernor:
    target_fps: float
    min_fps: float
    max_backlog: int
    max_latency_s: float
    fps: float = field(init=False)
    _last: float | None = field(default=None, init=False)
    _shed: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.min_fps = min(self.min_fps, self.target_fps)
        self.fps = self.target_fps

    @property
    def over_capacity(self) -> bool:
        return self.fps < self.target_fps - 1e-9

    def update(self, now: float, *, backlog: int, latency_s: float | None, busy: float = 0.0) -> float:
        """One control step (about once a second): the new sampling rate.

        ``busy``: share of the wall time since the last step the camera spent processing frames.
        """
        if self._last is not None:
            self._shed += max(self.target_fps - self.fps, 0.0) * max(now - self._last, 0.0)
        self._last = now
        behind = (backlog > self.max_backlog or (latency_s is not None and latency_s > self.max_latency_s)
                  or busy > MAX_BUSY)  # fmt: skip
        ahead = (backlog <= self.max_backlog // 4 and (latency_s is None or latency_s <= self.max_latency_s / 2)
                 and busy < AHEAD_BUSY)  # fmt: skip
        if behind:
            self.fps = max(self.min_fps, self.fps * DECREASE)
        elif ahead:
            self.fps = min(self.target_fps, self.fps + self.target_fps * INCREASE)
        return self.fps

    def take_shed_frames(self) -> int:
        """Whole frames not sampled for lack of CPU since the last call (the rest carries over)."""
        whole = int(self._shed)
        self._shed -= whole
        return whole
