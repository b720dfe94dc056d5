"""What the supervisor knows about its children, shared with the HTTP threads.

Children report through queues (status heartbeats, model readiness, JPEG
views, alerts); the supervisor's loop writes here and the console's handlers
read here, so no request ever touches a child process directly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fer_stream.alerts.message import Alert
from fer_stream.messages import CameraStatus, CameraView, ModelStatus

log = logging.getLogger(__name__)

#: A camera whose last heartbeat is older than this is not counted as up.
STATUS_STALE_S = 5.0
#: A camera encodes live-view JPEGs while a stream of it is open, or a single JPEG was asked for within this window.
VIEW_INTEREST_S = 5.0
#: Seconds of per-track scores kept for the console's chart.
SCORE_HISTORY_S = 60.0
#: Alerts kept in memory for the console (its history pages come from the Redis stream).
RECENT_ALERTS = 200


@dataclass
class DaemonState:
    cameras: list[str]
    started_at: float = field(default_factory=time.monotonic)
    model: ModelStatus | None = None
    statuses: dict[str, CameraStatus] = field(default_factory=dict)
    views: dict[str, CameraView] = field(default_factory=dict)
    pids: dict[str, int | None] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    stalled: set[str] = field(default_factory=set)
    alerts_forwarded: int = 0
    #: Episodes started (an episode's start, updates and end are several alert messages, one episode).
    episodes_started: int = 0
    #: camera -> open live streams / monotonic time of the last single-JPEG request
    viewers: dict[str, int] = field(default_factory=dict)
    last_view_request: dict[str, float] = field(default_factory=dict)
    #: camera -> (epoch second, track id, scores) of the last SCORE_HISTORY_S
    scores: dict[str, deque[tuple[float, int, tuple[float, ...]]]] = field(default_factory=dict)
    recent_alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=RECENT_ALERTS))
    #: Called (from the supervisor's thread) with every alert; the console's live list subscribes here.
    alert_listeners: list[Callable[[Alert], None]] = field(default_factory=list)
    #: Reports alert delivery (Redis up, outbox depth) for /status; None when alerts are off.
    delivery: Callable[[], dict[str, Any]] | None = None
    #: Reports each camera's snooze, start cap and held-back starts for /status; None when alerts are off.
    flood: Callable[[], dict[str, dict[str, Any]]] | None = None
    #: camera -> emotion -> the enter threshold of its alert rules (the camera page draws it on the chart).
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_model(self, model: ModelStatus | None) -> None:
        with self._lock:
            self.model = model

    def update_status(self, status: CameraStatus) -> None:
        now = time.time()
        with self._lock:
            self.statuses[status.camera] = status
            history = self.scores.setdefault(status.camera, deque())
            history.extend((now, track.track_id, track.scores) for track in status.tracks if track.scores)
            while history and now - history[0][0] > SCORE_HISTORY_S:
                history.popleft()

    def score_history(self, camera: str) -> list[tuple[float, int, tuple[float, ...]]]:
        """The last SCORE_HISTORY_S of scores (a camera that stopped reporting has none)."""
        since = time.time() - SCORE_HISTORY_S
        with self._lock:
            return [entry for entry in self.scores.get(camera, ()) if entry[0] >= since]

    def update_view(self, view: CameraView) -> None:
        with self._lock:
            self.views[view.camera] = view

    def set_pid(self, worker: str, pid: int | None) -> None:
        with self._lock:
            self.pids[worker] = pid

    def set_stalled(self, worker: str, stalled: bool) -> None:
        with self._lock:
            (self.stalled.add if stalled else self.stalled.discard)(worker)

    def count_restart(self, worker: str) -> None:
        with self._lock:
            self.restarts[worker] = self.restarts.get(worker, 0) + 1

    def record_alert(self, alert: Alert) -> None:
        """An alert left the supervisor: count it, keep it for the console and tell its live listeners."""
        with self._lock:
            self.alerts_forwarded += 1
            self.episodes_started += alert.event == "start"
            self.recent_alerts.append(alert)
            listeners = list(self.alert_listeners)
        for listener in listeners:
            try:
                listener(alert)
            except Exception:  # the console must never stop the supervisor's loop
                log.exception("an alert listener failed")

    def alerts(self) -> list[Alert]:
        with self._lock:
            return list(self.recent_alerts)

    def camera_up(self, name: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            status = self.statuses.get(name)
        return status is not None and status.up and now - status.at <= STATUS_STALE_S

    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): ready when the model is loaded and at least one camera is up."""
        with self._lock:
            model, stalled = self.model, sorted(self.stalled)
        if stalled:
            return False, f"worker(s) stalled, being restarted: {', '.join(stalled)}"
        if model is None:
            return False, "model not loaded (the inference worker is starting or restarting)"
        up = [name for name in self.cameras if self.camera_up(name)]
        if not up:
            return False, "no camera is up"
        return True, f"model {model.model_id} {model.version} loaded; cameras up: {', '.join(up)}"

    def view_jpeg(self, name: str) -> bytes | None:
        """The latest live-view JPEG; asking keeps the camera encoding for VIEW_INTEREST_S."""
        with self._lock:
            self.last_view_request[name] = time.monotonic()
            view = self.views.get(name)
        return None if view is None else view.jpeg

    def view(self, name: str) -> CameraView | None:
        with self._lock:
            return self.views.get(name)

    @contextlib.contextmanager
    def watching(self, name: str) -> Iterator[None]:
        """While a live stream of the camera is open, the camera encodes frames for it."""
        with self._lock:
            self.viewers[name] = self.viewers.get(name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.viewers[name] -= 1

    def viewers_present(self, name: str) -> bool:
        with self._lock:
            streams, asked = self.viewers.get(name, 0), self.last_view_request.get(name, -VIEW_INTEREST_S - 1)
        return streams > 0 or time.monotonic() - asked <= VIEW_INTEREST_S

    def snapshot(self) -> dict:
        """A JSON-ready picture of the daemon for /status and the demo summary."""
        now = time.monotonic()
        with self._lock:
            model, statuses = self.model, dict(self.statuses)
            pids, restarts, alerts, episodes = dict(self.pids), dict(self.restarts), self.alerts_forwarded, self.episodes_started
            stalled = sorted(self.stalled)
        flood = {} if self.flood is None else self.flood()
        cameras = {}
        for name in self.cameras:
            status = statuses.get(name)
            up = self.camera_up(name, now)
            state = "starting" if status is None else status.state
            reason = "" if status is None else status.reason
            if status is not None and not up and status.up:
                # Said it was up, then stopped reporting. A file camera that played its file says so last.
                state, reason = "silent", f"no word from the camera's process for over {STATUS_STALE_S:g} s: hung, stopped or restarting"
            cameras[name] = {
                "up": up,
                "state": state,
                "reason": reason,
                "processed_fps": round(status.processed_fps, 2) if status else 0.0,
                "tracks": [
                    {"track_id": t.track_id, "box": list(t.box), "emotion": t.emotion, "score": round(t.score, 3), "alerting": t.alerting}
                    for t in (status.tracks if status else ())
                ],
                **({"flood": flood[name]} if name in flood else {}),
            }
        return {
            "uptime_s": round(now - self.started_at, 1),
            "model": None if model is None else {"model_id": model.model_id, "version": model.version, "backend": model.backend},
            "cameras": cameras,
            "pids": pids,
            "restarts": restarts,
            "stalled": stalled,
            "alerts_forwarded": alerts,
            "episodes_started": episodes,
            "delivery": None if self.delivery is None else self.delivery(),
        }
