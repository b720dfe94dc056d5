"""Flood control: a camera snoozed by an operator, and a cap on episode starts per hour, hold back new episodes.

Decided in the supervisor as each alert arrives, per episode: a start held back
takes its updates and end with it (an episode is published whole or not at
all), and its pictures are not kept. Starts held back are counted, never
published; the camera goes on detecting, so its live view still shows the face.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from fer_stream.alerts.message import Alert
from fer_stream.reviews.store import ReviewStore, Snooze

log = logging.getLogger(__name__)

HOUR_S = 3600.0
#: Held-back episodes remembered (so their updates and ends are held too); an episode never ended is forgotten beyond.
MAX_HELD = 10_000


class FloodControl:
    """Thread-safe: the supervisor asks :meth:`admit`, the console snoozes and reads :meth:`status`."""

    def __init__(self, cameras: list[str], caps: dict[str, int | None], store: ReviewStore,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        """``caps``: camera -> alerts.rules.max_starts_per_hour (None: no cap)."""
        from fer_stream.metrics import ALERTS_HELD_BACK, CAMERA_SNOOZED

        self.cameras = cameras
        self.caps = caps
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._snoozes = {camera: snooze for camera, snooze in store.snoozes().items() if camera in cameras}
        self._starts: dict[str, deque[float]] = {camera: deque() for camera in cameras}
        self._held: OrderedDict[str, None] = OrderedDict()
        self._held_back = {camera: {"snoozed": 0, "cap": 0} for camera in cameras}
        self._m_held = {(c, r): ALERTS_HELD_BACK.labels(camera=c, reason=r) for c in cameras for r in ("snoozed", "cap")}
        self._m_snoozed = {camera: CAMERA_SNOOZED.labels(camera=camera) for camera in cameras}
        self.refresh()

    def admit(self, alert: Alert) -> bool:
        """Whether the alert goes out; a start decides for its whole episode."""
        with self._lock:
            if alert.event != "start":
                if alert.episode_id not in self._held:
                    return True
                if alert.event == "end":
                    del self._held[alert.episode_id]
                return False
            now = self._clock()
            camera = alert.camera
            starts = self._starts.setdefault(camera, deque())
            while starts and now - starts[0] > HOUR_S:
                starts.popleft()
            snooze = self._snoozes.get(camera)
            cap = self.caps.get(camera)
            reason = "snoozed" if snooze is not None and snooze.until > now else "cap" if cap is not None and len(starts) >= cap else None
            if reason is None:
                starts.append(now)
                return True
            self._held[alert.episode_id] = None
            while len(self._held) > MAX_HELD:
                self._held.popitem(last=False)
            self._held_back.setdefault(camera, {"snoozed": 0, "cap": 0})[reason] += 1
        self._m_held[(camera, reason)].inc()
        why = f"snoozed until {time.strftime('%H:%M:%S', time.localtime(snooze.until))}" if reason == "snoozed" and snooze \
            else f"{cap} starts in the last hour (alerts.rules.max_starts_per_hour)"
        log.info("alert held back: %s on %s (face #%d), camera %s", alert.emotion, camera, alert.track_id, why)
        return False

    def snooze(self, camera: str, seconds: float, by: str) -> float:
        """Snooze ``camera`` for ``seconds`` from now (0 ends a snooze); durable. Returns the end, epoch seconds."""
        now = self._clock()
        until = now + seconds
        self.store.snooze(camera, until, by, now)
        with self._lock:
            self._snoozes = {**self._snoozes, camera: Snooze(camera, until, by, now)}
        log.info("camera %s %s by %s", camera, f"snoozed for {seconds / 60:.0f} min" if seconds > 0 else "unsnoozed", by)
        self.refresh()
        return until

    def refresh(self) -> None:
        """Bring the snoozed gauges up to date (a snooze ends by itself)."""
        now = self._clock()
        with self._lock:
            snoozed = {camera: s is not None and s.until > now for camera, s in ((c, self._snoozes.get(c)) for c in self.cameras)}
        for camera, on in snoozed.items():
            self._m_snoozed[camera].set(1 if on else 0)

    def status(self) -> dict[str, dict]:
        """Per camera, for /status and the console: the snooze, the cap and what was held back."""
        now = self._clock()
        with self._lock:
            out = {}
            for camera in self.cameras:
                snooze = self._snoozes.get(camera)
                active = snooze is not None and snooze.until > now
                starts = sum(1 for t in self._starts.get(camera, ()) if now - t <= HOUR_S)
                out[camera] = {
                    "snoozed_until": snooze.until if active and snooze else None,
                    "snoozed_by": snooze.by if active and snooze else None,
                    "starts_last_hour": starts,
                    "max_starts_per_hour": self.caps.get(camera),
                    "held_back": dict(self._held_back.get(camera, {})),
                }
        return out
