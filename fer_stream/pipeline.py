"""One camera's pipeline: frame -> detections -> tracks -> face crops; probabilities -> track state -> alerts.

Synchronous and free of processes and queues, with its collaborators (detector,
tracker, alert rules) injected, so the camera worker, ``predict``, ``replay``
and ``calibrate`` run the very same steps: what is measured offline is what the
daemon does. The daemon sends the crops to the shared inference worker and
feeds the probabilities back when they return; the offline tools classify them
in place with :meth:`FacePipeline.classify`.

Detection is spent where it matters. With a motion gate, a frame whose scene
is still and holds no tracked face is not detected at all (the camera is idle).
With track guidance, detection frames between full-frame scans look for the
tracked faces only in windows around where they should be; a full scan runs
when motion appears away from every tracked face and at least every
``detector.scan_every_s``, so a new face is in a scan within ``scan_every_s``
of frame time plus one detection cadence, and within one cadence when it
moves. Each tracked face is classified on every processed frame while its
smoothed score of a watched emotion is near that emotion's threshold (at least
``classification.far_below`` of it) or it is inside an episode, and once every
``classification.far_every_s`` while far from all:
the alert rules weigh each result by the frame time it stands for, so their
timing in seconds holds at either rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fer_stream.alerts.message import Alert, EndReason
from fer_stream.alerts.rules import AlertTracker
from fer_stream.config.models import CameraSettings, ClassificationSettings, FaceQualitySettings
from fer_stream.faces import IouTracker, Track, crop_face
from fer_stream.faces.detector import FaceDetector
from fer_stream.faces.motion import Box, MotionGate
from fer_stream.faces.quality import QualityProblem, quality_problem
from fer_stream.messages import TrackView
from fer_stream.preprocessing import prepare_face, to_model_input

#: A batch of prepared faces (``to_model_input``) -> class probabilities, one row a face.
Classify = Callable[[np.ndarray], np.ndarray]
#: How a frame was searched for faces: the whole frame, or windows around the tracked faces.
Scan = Literal["full", "around"]
#: Motion whose centre lies within a tracked face's zone is that person's own (head and body, face sides:
#: left, right, up, down); motion anywhere else may be a new face and calls for a full scan.
ZONE_SIDES = (1.5, 1.5, 1.0, 4.0)


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
    scan: Scan | None  # how the detector ran on this frame; None: not at all (detector.detect_every, or idle)
    idle: bool  # the motion gate saw a still scene and no face was tracked: nothing was looked for
    detections: int
    crops: list[FaceCrop]
    gated: list[QualityProblem]
    deferred: int  # tracked faces far from every threshold, classified on a later frame (classification.far_every_s)
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
    #: Frame time of the latest crop sent to the classifier.
    classified_at: float = -float("inf")


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
        motion: MotionGate | None = None,
        scan_every_s: float | None = None,
        classification: ClassificationSettings | None = None,
    ) -> None:
        """``detect_every``: run the detector on every k-th frame; the frames between carry the tracks by their motion.

        ``motion``: the gate (None: every frame counts as moving); ``scan_every_s``: track-guided detection with a full
        scan at least this often (None: every detection is a full scan); ``classification``: per-face classification
        rates (None: every face on every frame).
        """
        self.detect_every = detect_every
        self._since_detection = detect_every  # the first frame is detected
        self._detected_at = -float("inf")
        self.motion = motion
        self.scan_every_s = scan_every_s
        self._scanned_at = -float("inf")
        self.classification = classification
        self.detector = detector
        self.tracker = tracker
        self.rules = rules
        self.labels = list(labels)
        self.input_size = input_size
        self.quality = quality
        self.tracks: dict[int, TrackedFace] = {}
        self.frame_size = (0, 0)

    def moved(self, image: np.ndarray) -> list[Box] | None:
        """Where this frame moved, for :meth:`faces` (None without a motion gate). Call it once per frame, in order."""
        return None if self.motion is None else self.motion.update(image)

    def idle(self, motion: list[Box] | None) -> bool:
        """Whether a frame with this motion needs no detection: a still scene, and no face tracked."""
        return motion == [] and not self.tracker.tracks

    def faces(self, image: np.ndarray, captured_at: float, motion: list[Box] | None | Literal["look"] = "look") -> FrameFaces:
        """Detect, track and crop the faces of one frame (``captured_at``: epoch seconds).

        ``motion``: what :meth:`moved` said of this frame, when the caller asked first; by default the gate looks here.
        """
        self.frame_size = (image.shape[1], image.shape[0])
        if motion == "look":
            motion = self.moved(image)
        live = self.tracker.tracks
        if self.idle(motion):
            self._since_detection = self.detect_every  # the first frame that moves is detected
            return FrameFaces(captured_at=captured_at, scan=None, idle=True, detections=0, crops=[], gated=[], deferred=0,
                              ended=[], alerts=[])
        # Detect every k-th frame, and often enough that coasting tracks are not ended for want of a detection.
        due = self._since_detection >= self.detect_every or captured_at - self._detected_at >= self.tracker.max_missed_s / 2
        scan: Scan | None = None
        if due:
            if self._full_scan_due(motion, live, captured_at):
                scan, detections = "full", self.detector.detect(image)
                self._scanned_at = captured_at
            else:
                scan, detections = "around", self.detector.detect_around(image, [t.predicted(captured_at) for t in live])
            update = self.tracker.update(detections, captured_at)
            self._since_detection, self._detected_at = 1, captured_at
        else:
            detections = []
            update = self.tracker.coast(captured_at, self.frame_size)
            self._since_detection += 1
        crops: list[FaceCrop] = []
        gated: list[QualityProblem] = []
        deferred = 0
        for track in update.active:  # confirmed tracks seen in this frame, or carried to it by their motion
            state = self.tracks.setdefault(track.track_id, TrackedFace(box=track.box))
            state.box = track.box
            if not self._classify_now(track.track_id, state, captured_at):
                deferred += 1
                continue
            face = prepare_face(crop_face(image, track.box), self.input_size)
            state.problem = quality_problem(self.quality, track.box, face, track.landmarks)
            if state.problem is None:
                crops.append(FaceCrop(track_id=track.track_id, box=track.box, face=face))
                state.classified_at = captured_at
            else:
                gated.append(state.problem)
        alerts: list[Alert] = []
        for track_id in update.ended:
            self.tracks.pop(track_id, None)
            if self.rules is not None:
                alerts += self.rules.forget(track_id, captured_at)
        return FrameFaces(
            captured_at=captured_at, scan=scan, idle=False, detections=len(detections), crops=crops, gated=gated,
            deferred=deferred, ended=update.ended, alerts=alerts,
        )

    def _full_scan_due(self, motion: list[Box] | None, live: list[Track], t: float) -> bool:
        """Whether this detection frame scans the whole frame rather than the windows around the tracked faces."""
        if self.scan_every_s is None or not live or t - self._scanned_at >= self.scan_every_s:
            return True
        zones = [_zone(track.predicted(t)) for track in live]
        return any(
            not any(x0 <= mx + mw / 2 <= x1 and y0 <= my + mh / 2 <= y1 for x0, y0, x1, y1 in zones)
            for mx, my, mw, mh in motion or ()
        )

    def _classify_now(self, track_id: int, face: TrackedFace, t: float) -> bool:
        """Whether this frame's crop of the face goes to the classifier (near a threshold, or due at the far rate)."""
        settings = self.classification
        if settings is None or not settings.adaptive or self.rules is None or t - face.classified_at >= settings.far_every_s:
            return True  # without alert rules there is no threshold to be far from: every frame, for the view
        if self.rules.is_alerting(track_id):
            return True
        smoothed = self.rules.smoothed(track_id)
        if smoothed is None:
            return True
        rules = self.rules.rules
        return any(smoothed[emotion] >= settings.far_below * rules.enter_for(emotion) for emotion in rules.watched)

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
        motion=MotionGate(settings.motion) if settings.motion.enabled else None,
        scan_every_s=settings.detector.scan_every_s if settings.detector.track_guided else None,
        classification=settings.classification,
    )


def _zone(box: Box) -> tuple[float, float, float, float]:
    """The part of the frame a tracked face's own head and body move in (x0, y0, x1, y1)."""
    x, y, w, h = box
    left, right, up, down = ZONE_SIDES
    return x - left * w, y - up * h, x + w + right * w, y + h + down * h
