"""One camera's pipeline: frame -> detections -> tracks -> face crops; probabilities -> track state -> alerts.

Synchronous and free of processes and queues, with its collaborators (detector,
tracker, alert rules) injected, so the camera worker, ``predict``, ``replay``
and ``calibrate`` run the very same steps: what is measured offline is what the
daemon does. The daemon sends the crops to the shared inference worker and
feeds the probabilities back when they return; the offline tools classify them
in place with :meth:`FacePipeline.classify`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_stream.alerts.message import Alert, EndReason
from fer_stream.alerts.rules import AlertTracker
from fer_stream.config.models import CameraSettings, FaceQualitySettings
from fer_stream.faces import IouTracker, crop_face
from fer_stream.faces.detector import FaceDetector
from fer_stream.faces.quality import QualityProblem, quality_problem
from fer_stream.messages import TrackView
from fer_stream.preprocessing import prepare_face, to_model_input

#: A batch of prepared faces (``to_model_input``) -> class probabilities, one row a face.
Classify = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceCrop:
    """A tracked face of this frame, prepared for the classifier."""

    track_id: int
    box: tuple[int, int, int, int]
    face: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameFaces:
    """What one frame gave: faces to classify, faces the quality gate held back, lost faces and their alerts."""

    captured_at: float
    detected: bool  # whether the detector ran on this frame (detector.detect_every)
    detections: int
    crops: list[FaceCrop]
    gated: list[QualityProblem]
    ended: list[int]
    alerts: list[Alert]


@dataclass(slots=True, kw_only=True)
class TrackedFace:
    """Everything the camera knows about one tracked face (the alert rules keep their own smoothing)."""

    box: tuple[int, int, int, int]
    emotion: str | None = None
    score: float = 0.0
    problem: QualityProblem | None = None
    alerting: set[str] = field(default_factory=set)
    #: The latest result's probabilities (the view shows the rules' smoothed ones instead when there are rules).
    probabilities: np.ndarray | None = None


class FacePipeline:
    """One camera's faces and alert rules. Not thread-safe: one per camera."""

    def __init__(
        self,
        *,
        detector: FaceDetector,
        tracker: IouTracker,
        rules: AlertTracker | None,
        labels: Sequence[str],
        input_size: int,
        quality: FaceQualitySettings,
        detect_every: int = 1,
    ) -> None:
        """``detect_every``: run the detector on every k-th frame; the frames between carry the tracks by their motion."""
        self.detect_every = detect_every
        self._since_detection = detect_every  # the first frame is detected
        self._detected_at = -float("inf")
        self.detector = detector
        self.tracker = tracker
        self.rules = rules
        self.labels = list(labels)
        self.input_size = input_size
        self.quality = quality
        self.tracks: dict[int, TrackedFace] = {}
        self.frame_size = (0, 0)

    def faces(self, image: np.ndarray, captured_at: float) -> FrameFaces:
        """Detect, track and crop the faces of one frame (``captured_at``: epoch seconds)."""
        self.frame_size = (image.shape[1], image.shape[0])
        # Detect every k-th frame, and often enough that coasting tracks are not ended for want of a detection.
        due = self._since_detection >= self.detect_every or captured_at - self._detected_at >= self.tracker.max_missed_s / 2
        if due:
            detections = self.detector.detect(image)
            update = self.tracker.update(detections, captured_at)
            self._since_detection, self._detected_at = 1, captured_at
        else:
            detections = []
            update = self.tracker.coast(captured_at, self.frame_size)
            self._since_detection += 1
        crops: list[FaceCrop] = []
        gated: list[QualityProblem] = []
        for track in update.active:  # confirmed tracks seen in this frame, or carried to it by their motion
            state = self.tracks.setdefault(track.track_id, TrackedFace(box=track.box))
            state.box = track.box
            face = prepare_face(crop_face(image, track.box), self.input_size)
            state.problem = quality_problem(self.quality, track.box, face, track.landmarks)
            if state.problem is None:
                crops.append(FaceCrop(track_id=track.track_id, box=track.box, face=face))
            else:
                gated.append(state.problem)
        alerts: list[Alert] = []
        for track_id in update.ended:
            self.tracks.pop(track_id, None)
            if self.rules is not None:
                alerts += self.rules.forget(track_id, captured_at)
        return FrameFaces(
            captured_at=captured_at, detected=due, detections=len(detections), crops=crops, gated=gated, ended=update.ended,
            alerts=alerts,
        )

    def observe(self, track_id: int, probabilities: np.ndarray, captured_at: float) -> list[Alert]:
        """One classification came back: update the face and run the alert rules on it."""
        state = self.tracks.get(track_id)
        if state is None:
            return []  # the track ended while its face was being classified
        top = int(np.argmax(probabilities))
        state.emotion, state.score = self.labels[top], float(probabilities[top])
        state.probabilities = probabilities
        if self.rules is None:
            return []
        alerts = self.rules.observe(track_id, probabilities, captured_at, state.box, self.frame_size)
        for alert in alerts:
            if alert.track_id == track_id and alert.event == "start":
                state.alerting.add(alert.emotion)
            elif alert.track_id == track_id and alert.event == "end":
                state.alerting.discard(alert.emotion)
        return alerts

    def classify(self, frame: FrameFaces, classify: Classify) -> tuple[np.ndarray, list[Alert]]:
        """The offline path: classify the frame's crops in place; their probabilities and the alerts they caused."""
        if not frame.crops:
            return np.zeros((0, len(self.labels)), dtype=np.float32), []
        probabilities = classify(to_model_input([crop.face for crop in frame.crops]))
        alerts: list[Alert] = []
        for crop, probs in zip(frame.crops, probabilities, strict=True):
            alerts += self.observe(crop.track_id, probs, frame.captured_at)
        return probabilities, alerts

    def finish(self, t: float, reason: EndReason = "camera_stopped") -> list[Alert]:
        """The camera stops or loses its stream: end every open episode and forget the faces."""
        self.tracks.clear()
        return [] if self.rules is None else self.rules.forget_all(t, reason)

    def views(self) -> tuple[TrackView, ...]:
        """What the live view and the heartbeat show (built about once a second, not per result)."""
        return tuple(
            TrackView(track_id=tid, box=s.box, emotion=s.emotion, score=s.score, alerting=bool(s.alerting),
                      scores=self._scores(tid, s))
            for tid, s in sorted(self.tracks.items())
        )

    def _scores(self, track_id: int, face: TrackedFace) -> tuple[float, ...]:
        """Every label's probability: the alert rules' smoothed ones, or the latest result's without rules."""
        smoothed = None if self.rules is None else self.rules.smoothed(track_id)
        if smoothed is not None:
            return tuple(smoothed.values())
        return () if face.probabilities is None else tuple(float(p) for p in face.probabilities)


def build_pipeline(
    settings: CameraSettings,
    *,
    labels: Sequence[str],
    input_size: int,
    model_id: str,
    model_version: str,
    alerts_enabled: bool = True,
    host: str | None = None,
    shard: str | None = None,
    first_track_id: int = 1,
    camera_cooldowns: dict[str, float] | None = None,
) -> FacePipeline:
    """The pipeline a camera's effective settings describe (detector files are loaded here)."""
    from fer_stream.faces import create_detector

    tracking = settings.tracking
    rules = (
        AlertTracker(settings.alert_rules, settings.camera.name, list(labels), model_id, model_version, host=host, shard=shard,
                     camera_cooldowns=camera_cooldowns)
        if alerts_enabled
        else None
    )
    return FacePipeline(
        detector=create_detector(settings.detector),
        tracker=IouTracker(tracking.iou_threshold, tracking.max_missed_s, tracking.min_hits, first_id=first_track_id),
        rules=rules,
        labels=labels,
        input_size=input_size,
        quality=settings.face_quality,
        detect_every=settings.detector.detect_every,
    )
