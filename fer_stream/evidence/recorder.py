"""Pictures of alert events, made in the camera process from the frame the event was read from.

A start is raised when a face's classification comes back, a few frames after
the frame was read; an end for a lost face refers to the last frame it was
seen in. So the recorder keeps the frames of the last ``WINDOW_S`` seconds (by
reference: the source hands out a new array per frame) and pictures an event on
the kept frame nearest its ``event_at``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from fer_stream.alerts.message import Alert, Snapshot
from fer_stream.faces.annotate import blur_faces, draw_annotations
from fer_stream.messages import AlertPictures

#: Seconds of frames kept: the classifier's latency bound plus a lost face's last sighting (tracking.max_missed_s).
WINDOW_S = 2.0
#: Snapshots wider than this are downscaled (evidence, not archive footage).
MAX_WIDTH = 1280
FACE_HEIGHT = 192
JPEG_QUALITY = 85
#: Which events get pictures: updates only say an episode goes on.
PICTURED_EVENTS = ("start", "end")


@dataclass(frozen=True, slots=True)
class _Kept:
    captured_at: float
    image: np.ndarray
    boxes: tuple[tuple[int, int, int, int], ...]


def snapshot_name(alert: Alert) -> str:
    """The file stem both the pictures and the alert's ``snapshot`` paths use."""
    return f"{alert.episode_id}-{alert.event}"


class EvidenceRecorder:
    """One camera's recent frames, and the pictures of its alert events. Not thread-safe: one per camera."""

    def __init__(self, *, blur: bool, window_s: float = WINDOW_S) -> None:
        """``blur``: pixelate every face in the frame picture and keep no face picture (console.blur_faces)."""
        self.blur = blur
        self.window_s = window_s
        self._frames: deque[_Kept] = deque()

    def remember(self, image: np.ndarray, captured_at: float, boxes: tuple[tuple[int, int, int, int], ...]) -> None:
        """Keep a processed frame with the boxes of its tracked faces (epoch ``captured_at``)."""
        self._frames.append(_Kept(captured_at, image, boxes))
        while self._frames and captured_at - self._frames[0].captured_at > self.window_s:
            self._frames.popleft()

    def picture(self, alert: Alert) -> tuple[Alert, AlertPictures] | None:
        """The alert with its ``snapshot`` set, and its pictures; None for an update or with no frame kept."""
        if alert.event not in PICTURED_EVENTS or not self._frames:
            return None
        t = alert.event_at.timestamp()
        kept = min(self._frames, key=lambda k: abs(k.captured_at - t))
        box = (alert.box.x, alert.box.y, alert.box.w, alert.box.h)
        frame = blur_faces(kept.image, kept.boxes) if self.blur else kept.image
        framed = draw_annotations(frame, [(box, alert.emotion, alert.score, alert.track_id, True)])
        if framed.shape[1] > MAX_WIDTH:
            scale = MAX_WIDTH / framed.shape[1]
            framed = cv2.resize(framed, (MAX_WIDTH, round(framed.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        face_jpeg = None if self.blur else _face_jpeg(kept.image, box)
        name = snapshot_name(alert)
        pictures = AlertPictures(name=name, frame_jpeg=_jpeg(framed), face_jpeg=face_jpeg)
        snapshot = Snapshot(frame=f"/snapshots/{name}.jpg", face=None if face_jpeg is None else f"/snapshots/{name}-face.jpg")
        return alert.model_copy(update={"snapshot": snapshot}), pictures


def _face_jpeg(image: np.ndarray, box: tuple[int, int, int, int]) -> bytes | None:
    """The face with a quarter of its size around it, FACE_HEIGHT pixels high."""
    x, y, w, h = box
    pad_x, pad_y = w // 4, h // 4
    x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
    x1, y1 = min(image.shape[1], x + w + pad_x), min(image.shape[0], y + h + pad_y)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = image[y0:y1, x0:x1]
    width = max(1, round(crop.shape[1] * FACE_HEIGHT / crop.shape[0]))
    return _jpeg(cv2.resize(crop, (width, FACE_HEIGHT), interpolation=cv2.INTER_AREA))


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} picture as JPEG")
    return data.tobytes()
