"""What the supervisor knows about its children, shared with the HTTP threads.

Children report through queues (status heartbeats, model readiness, JPEG
views); the supervisor's loop writes here and the HTTP handlers read here, so
no request ever touches a child process directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fer_stream.messages import CameraStatus, CameraView, ModelStatus

#: A camera whose last heartbeat is older than this is not counted as up.
STATUS_STALE_S = 5.0
#: Live-view JPEGs are produced while a viewer asked for one within this window.
VIEW_INTEREST_S = 5.0


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
    last_view_request: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_model(self, model: ModelStatus | None) -> None:
        with self._lock:
            self.model = model

    def update_status(self, status: CameraStatus) -> None:
        with self._lock:
            self.statuses[status.camera] = status

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

    def count_alert(self) -> None:
        with self._lock:
            self.alerts_forwarded += 1

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
        with self._lock:
            self.last_view_request = time.monotonic()
            view = self.views.get(name)
        return None if view is None else view.jpeg

    def viewers_present(self) -> bool:
        return time.monotonic() - self.last_view_request <= VIEW_INTEREST_S

    def snapshot(self) -> dict:
        """A JSON-ready picture of the daemon for /status and the demo summary."""
        now = time.monotonic()
        with self._lock:
            model, statuses = self.model, dict(self.statuses)
            pids, restarts, alerts = dict(self.pids), dict(self.restarts), self.alerts_forwarded
            stalled = sorted(self.stalled)
        cameras = {}
        for name in self.cameras:
            status = statuses.get(name)
            up = self.camera_up(name, now)
            state = "starting" if status is None else status.state
            if status is not None and not up and status.up:
                state = "silent"  # said it was up, then stopped reporting: hung, stopped or restarting
            cameras[name] = {
                "up": up,
                "state": state,
                "reason": "" if status is None else status.reason,
                "processed_fps": round(status.processed_fps, 2) if status else 0.0,
                "tracks": [
                    {"track_id": t.track_id, "box": list(t.box), "emotion": t.emotion, "score": round(t.score, 3), "alerting": t.alerting}
                    for t in (status.tracks if status else ())
                ],
            }
        return {
            "uptime_s": round(now - self.started_at, 1),
            "model": None if model is None else {"model_id": model.model_id, "version": model.version, "backend": model.backend},
            "cameras": cameras,
            "pids": pids,
            "restarts": restarts,
            "stalled": stalled,
            "alerts_forwarded": alerts,
        }
