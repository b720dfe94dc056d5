"""Every message that crosses a process boundary, defined once.

Camera workers, the inference worker and the supervisor talk only through
bounded queues carrying these types. Faces travel already prepared (uint8,
``S x S`` grey, see ``fer_stream.preprocessing.prepare_face``) so the expensive
resize happens in the camera's own process and the pickles stay small.

Each face carries two times of its frame's capture: ``captured_at`` (wall
clock, epoch seconds: alert rules and alert messages use it) and
``captured_monotonic`` (``time.monotonic()``, shared by all processes of a
Linux host: latencies are measured with it). Other ``at`` fields are monotonic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from fer_stream.alerts.message import Alert


class SourceState(enum.StrEnum):
    """Where a camera's stream is (``CameraStatus.state``)."""

    STARTING = "starting"
    UP = "up"
    DOWN = "down"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceRequest:
    """A tracked face waiting for classification (camera -> inference)."""

    camera: str
    track_id: int
    frame_id: int
    captured_at: float
    captured_monotonic: float
    face: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceResult:
    """Class probabilities for one FaceRequest (inference -> that camera)."""

    camera: str
    track_id: int
    frame_id: int
    captured_at: float
    captured_monotonic: float
    probabilities: np.ndarray
    classified_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackView:
    """What the live view and the demo summary show for one tracked face."""

    track_id: int
    box: tuple[int, int, int, int]
    emotion: str | None
    score: float
    alerting: bool = False
    #: Smoothed probability of every label, in the model's label order (the console's chart); empty before a result.
    scores: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraStatus:
    """A camera's periodic heartbeat to the supervisor (camera -> supervisor)."""

    camera: str
    state: SourceState
    up: bool
    at: float
    processed_fps: float
    tracks: tuple[TrackView, ...] = field(default_factory=tuple)
    reason: str = ""  # why the source is in its state (never holds a password)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStatus:
    """Sent once the inference worker has loaded and warmed its model."""

    model_id: str
    version: str
    backend: str
    labels: tuple[str, ...]
    pid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraView:
    """A downscaled annotated JPEG for the live view (camera -> supervisor)."""

    camera: str
    at: float
    jpeg: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertPictures:
    """The pictures of one alert event, stored under the names its ``snapshot`` refers to."""

    name: str  # <episode_id>-<event>
    frame_jpeg: bytes
    face_jpeg: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """An alert and its pictures (camera -> supervisor), one message on the camera's own queue.

    Together, the supervisor keeps the pictures before it forwards the alert, so the console has them when
    the alert arrives, without relying on the order of two queues.
    """

    alert: Alert
    pictures: AlertPictures | None = None
