"""Helpers shared by the alerts tests: a ready-made alert, metric reads, polling with a generous timeout."""

from __future__ import annotations

import time
import uuid

from prometheus_client import REGISTRY

from fer_stream.alerts.message import Alert, Box, FrameSize, ModelRef, utc_from_epoch


def make_alert(camera: str = "gate", track_id: int = 1, event: str = "start") -> Alert:
    now = time.time()
    return Alert(
        episode_id=uuid.uuid4().hex,
        event=event,
        end_reason="calm" if event == "end" else None,
        score=0.8,
        camera=camera,
        track_id=track_id,
        emotion="angry",
        peak_score=0.9,
        mean_score=0.7,
        duration_s=2.0,
        started_at=utc_from_epoch(now - 2),
        event_at=utc_from_epoch(now),
        box=Box(x=1, y=2, w=30, h=40),
        frame=FrameSize(width=640, height=360),
        model=ModelRef(id="m", version="1"),
        host="h",
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
