"""Video files through the camera pipeline, frame-exact and as fast as the CPU allows.

Frames are sampled at the camera's fps by the video's own clock (not the wall
clock), so a replay gives the same result on a busy machine and an idle one,
and the times it reports are seconds of video. Every classification and every
lost face is recorded in order (:class:`Trace`), so the alert rules can be run
again over the same footage with other parameters without decoding, detecting
or classifying again (``calibrate``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_stream.alerts.config import AlertRules
from fer_stream.alerts.message import Alert
from fer_stream.alerts.rules import AlertTracker
from fer_stream.pipeline import Classify, FacePipeline

#: Replayed video time 0 is this epoch second, so alert times are plain offsets from it.
EPOCH = 1_790_000_000.0


class VideoError(OSError):
    """A video file that cannot be opened or holds no frame."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One classification of one tracked face at ``t`` seconds of video."""

    t: float
    track_id: int
    box: tuple[int, int, int, int]
    frame_size: tuple[int, int]
    probabilities: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class Lost:
    """The tracker gave up on a face at ``t`` seconds of video."""

    t: float
    track_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedAlert:
    t: float
    alert: Alert

    def line(self) -> str:
        alert = self.alert
        return (
            f"{self.t:7.2f} s  {alert.event:<6}  {alert.emotion:<8}  track {alert.track_id}  "
            f"peak {alert.peak_score:.2f}  mean {alert.mean_score:.2f}  duration {alert.duration_s:.1f} s"
        )

    def as_json(self) -> dict:
        """The alert as published, at its video time; ``alert_id`` and ``host`` mean nothing offline."""
        return {"video_time_s": round(self.t, 3), **self.alert.model_dump(mode="json", exclude={"alert_id", "host"})}


@dataclass(slots=True, kw_only=True)
class Trace:
    """A replayed video: what was seen, in order, and the alerts the pipeline's rules raised."""

    video: Path
    duration_s: float = 0.0
    frames: int = 0
    detections: int = 0
    gated: Counter[str] = field(default_factory=Counter)
    events: list[Observation | Lost] = field(default_factory=list)
    alerts: list[TimedAlert] = field(default_factory=list)

    @property
    def classified(self) -> int:
        return sum(isinstance(event, Observation) for event in self.events)


def _open(video: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise VideoError(f"{video}: cannot open this video (missing, unreadable, or a format FFmpeg does not know)")
    return capture


def _frame_rate(capture: cv2.VideoCapture) -> float:
    return capture.get(cv2.CAP_PROP_FPS) or 30.0  # a container that does not say is taken as 30 fps


def video_fps(video: Path) -> float:
    """The video's own frame rate: sampling at it yields every frame."""
    capture = _open(video)
    try:
        return _frame_rate(capture)
    finally:
        capture.release()


def sample_frames(video: Path, fps: float, loops: int = 1) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds of video, frame) at ``fps``, over ``loops`` plays back to back with time running on."""
    offset, samples = 0.0, 0
    for _ in range(loops):
        capture = _open(video)
        video_fps = _frame_rate(capture)
        index = 0
        try:
            while True:
                ok = capture.grab()
                if not ok:
                    break
                t = offset + index / video_fps
                index += 1
                if t + 1e-9 < samples / fps:  # counted, not summed: no drift, and at the video's fps every frame
                    continue
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    continue
                samples += 1
                yield t, frame
        finally:
            capture.release()
        offset += index / video_fps
    if not samples:
        raise VideoError(f"{video}: no frame could be decoded")


#: Called with (seconds of video, frame) once the frame's faces are classified: ``pipeline.views()`` is then this frame's.
FrameHook = Callable[[float, np.ndarray], None]


def replay_video(
    video: Path, pipeline: FacePipeline, classify: Classify, *, fps: float, loops: int = 1, on_frame: FrameHook | None = None
) -> Trace:
    """Run one video through ``pipeline`` (its rules, when it has them, raise the trace's alerts)."""
    trace = Trace(video=video)
    t = 0.0
    for t, frame in sample_frames(video, fps, loops):
        trace.frames += 1
        faces = pipeline.faces(frame, EPOCH + t)
        trace.detections += faces.detections
        trace.gated.update(problem.value for problem in faces.gated)
        trace.events += [Lost(t=t, track_id=track_id) for track_id in faces.ended]
        trace.alerts += [TimedAlert(t=t, alert=alert) for alert in faces.alerts]
        probabilities, alerts = pipeline.classify(faces, classify)
        trace.events += [
            Observation(t=t, track_id=crop.track_id, box=crop.box, frame_size=pipeline.frame_size, probabilities=p)
            for crop, p in zip(faces.crops, probabilities, strict=True)
        ]
        trace.alerts += [TimedAlert(t=t, alert=alert) for alert in alerts]
        if on_frame is not None:
            on_frame(t, frame)
    trace.duration_s = t + 1.0 / fps
    trace.alerts += [TimedAlert(t=trace.duration_s, alert=alert) for alert in pipeline.finish(EPOCH + trace.duration_s)]
    return trace


def rerun_rules(trace: Trace, rules: AlertRules, labels: list[str], camera: str = "replay") -> list[TimedAlert]:
    """The alerts ``rules`` would have raised on this footage: the same state machine, fed the recorded events."""
    tracker = AlertTracker(rules, camera, labels, "replay", "replay", host="replay")
    alerts: list[TimedAlert] = []
    for event in trace.events:
        if isinstance(event, Observation):
            raised = tracker.observe(event.track_id, event.probabilities, EPOCH + event.t, event.box, event.frame_size)
        else:
            raised = tracker.forget(event.track_id, EPOCH + event.t)
        alerts += [TimedAlert(t=event.t, alert=alert) for alert in raised]
    alerts += [TimedAlert(t=trace.duration_s, alert=a) for a in tracker.forget_all(EPOCH + trace.duration_s)]
    return alerts
