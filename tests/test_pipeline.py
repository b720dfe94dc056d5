"""The camera pipeline without processes: frames in, crops out, probabilities in, alerts out."""

from __future__ import annotations

import numpy as np
import pytest

from fer_stream.alerts.config import AlertRules
from fer_stream.alerts.rules import AlertTracker
from fer_stream.config.models import FaceQualitySettings
from fer_stream.faces import Detection, IouTracker
from fer_stream.faces.quality import QualityProblem, quality_problem, yaw_ratio
from fer_stream.pipeline import FacePipeline

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
T0 = 1_790_000_000.0
FRONTAL = ((130.0, 130.0), (170.0, 130.0), (150.0, 150.0), (135.0, 170.0), (165.0, 170.0))


class ScriptedDetector:
    """Returns, frame after frame, the detections it was given (an empty list: the face is gone)."""

    name = "scripted"

    def __init__(self, frames: list[list[Detection]]):
        self.frames = list(frames)
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        return self.frames.pop(0)


def textured_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (360, 640, 3), dtype=np.uint8)


def pipeline(
    frames: list[list[Detection]], rules: AlertRules | None = None, detect_every: int = 1, max_missed_s: float = 0.5, **quality
) -> FacePipeline:
    return FacePipeline(
        detect_every=detect_every,
        detector=ScriptedDetector(frames),
        tracker=IouTracker(min_hits=1, max_missed_s=max_missed_s),
        rules=AlertTracker(rules or AlertRules(), "door", LABELS, "m", "1", host="test"),
        labels=LABELS,
        input_size=48,
        quality=FaceQualitySettings(**quality),
    )


def angry(batch: np.ndarray) -> np.ndarray:
    out = np.full((len(batch), len(LABELS)), 0.1 / 6, dtype=np.float32)
    out[:, 0] = 0.9
    return out


def test_a_sustained_angry_face_starts_one_episode_and_ends_it_when_lost():
    face = Detection((100, 80, 100, 100), 0.9, FRONTAL)
    p = pipeline([[face]] * 40 + [[]] * 10)
    events = []
    for i in range(50):
        t = T0 + i / 10
        faces = p.faces(textured_frame(i), t)
        assert len(faces.crops) == (1 if i < 40 else 0)
        assert all(crop.face.shape == (48, 48) and crop.face.dtype == np.uint8 for crop in faces.crops)
        _, alerts = p.classify(faces, angry)
        events += [(a.event, a.emotion, round(a.event_at.timestamp() - T0, 1)) for a in faces.alerts + alerts]
    starts = [e for e in events if e[0] == "start"]
    ends = [e for e in events if e[0] == "end"]
    assert len(starts) == 1 and starts[0][1] == "angry" and 0.5 <= starts[0][2] <= 3.0
    assert len(ends) == 1 and ends[0][2] == pytest.approx(3.9, abs=0.11), "ends at the face's last sighting"
    assert p.tracks == {} and p.views() == ()


def test_a_face_shows_as_alerting_through_its_updates_until_its_end():
    face = Detection((100, 80, 100, 100), 0.9, FRONTAL)
    p = pipeline([[face]] * 60, AlertRules(update_every_s=1.0))
    alerting, events = [], []
    for i in range(60):
        faces = p.faces(textured_frame(i), T0 + i / 10)
        _, alerts = p.classify(faces, angry)
        events += [a.event for a in alerts]
        alerting.append(p.views()[0].alerting)
    assert events.count("start") == 1 and events.count("update") >= 3
    first = alerting.index(True)
    assert all(alerting[first:]), "an update does not end the face's alerting state"
    assert len(p.views()[0].scores) == len(LABELS) and p.views()[0].scores[0] > 0.5


def test_detecting_every_third_frame_still_classifies_every_frame_and_alerts_alike():
    face = Detection((100, 80, 100, 100), 0.9, FRONTAL)
    every, each = pipeline([[face]] * 14, detect_every=3), pipeline([[face]] * 40)
    events = {}
    for name, p in (("every", every), ("each", each)):
        events[name] = []
        for i in range(40):
            faces = p.faces(textured_frame(i), T0 + i / 10)
            assert len(faces.crops) == 1, "the face is classified on every frame"
            _, alerts = p.classify(faces, angry)
            events[name] += [(a.event, round(a.event_at.timestamp() - T0, 1)) for a in alerts]
    assert every.detector.calls == 14 and each.detector.calls == 40
    assert events["every"] == events["each"] != []


def test_detection_runs_often_enough_that_coasting_never_ends_a_present_face():
    """At 1 frame a second (an overloaded camera), detect_every 5 would detect every 5 s: tracks would end."""
    face = Detection((100, 80, 100, 100), 0.9, FRONTAL)
    p = pipeline([[face]] * 10, detect_every=5)
    for i in range(10):
        faces = p.faces(textured_frame(i), T0 + i)
        assert faces.scan == "full" and faces.ended == []
    assert p.detector.calls == 10


def test_a_fast_face_carried_out_of_the_frame_between_detections_is_not_cropped():
    """Up and to the right at about 190 px/s, then missed by the detector: its coasted box leaves the 640x360 frame."""
    moving = [[Detection((100 + 40 * k, 200 - 20 * k, 120, 120), 0.9)] for k in range(5)]
    p = pipeline(moving + [[]] * 20, detect_every=2, max_missed_s=3.0)
    for i in range(32):
        faces = p.faces(textured_frame(i), T0 + i / 10)
        for crop in faces.crops:
            x, y, w, h = crop.box
            assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 360, f"frame {i}: {crop.box}"
    assert faces.crops == [] and faces.gated == [] and faces.ended == [], "out of the frame, not yet ended"
    assert [track.track_id for track in p.tracker.tracks] == [1]


def test_results_for_a_track_that_ended_meanwhile_are_ignored():
    p = pipeline([[Detection((100, 80, 100, 100), 0.9, FRONTAL)], []])
    faces = p.faces(textured_frame(), T0)
    track_id = faces.crops[0].track_id
    assert p.faces(textured_frame(), T0 + 1.0).ended == [track_id]
    assert p.observe(track_id, angry(np.zeros((1, 1)))[0], T0) == []


def test_the_view_shows_each_face_with_its_latest_label():
    p = pipeline([[Detection((100, 80, 100, 100), 0.9, FRONTAL)]])
    faces = p.faces(textured_frame(), T0)
    p.classify(faces, angry)
    [view] = p.views()
    assert view.emotion == "angry" and view.score == pytest.approx(0.9) and view.box == (100, 80, 100, 100)


@pytest.mark.parametrize(
    ("detection", "frame", "problem"),
    [
        (Detection((100, 80, 20, 20), 0.9, None), textured_frame(), QualityProblem.SMALL),
        (Detection((100, 80, 100, 100), 0.9, ((130.0, 130.0), (170.0, 130.0), (185.0, 150.0))), textured_frame(),
         QualityProblem.TURNED),
        (Detection((100, 80, 100, 100), 0.9, FRONTAL), np.full((360, 640, 3), 128, np.uint8), QualityProblem.BLURRED),
    ],
)
def test_the_quality_gate_keeps_poor_faces_from_the_classifier(detection, frame, problem):
    p = pipeline([[detection]])
    faces = p.faces(frame, T0)
    assert faces.crops == [] and faces.gated == [problem]
    assert p.tracks[1].problem is problem, "the face is still tracked (and drawn), only not classified"


def test_the_quality_gate_can_be_switched_off():
    p = pipeline([[Detection((100, 80, 20, 20), 0.9, None)]], enabled=False)
    assert len(p.faces(np.full((360, 640, 3), 128, np.uint8), T0).crops) == 1


def test_yaw_is_measured_from_the_landmarks_and_skipped_without_them():
    assert yaw_ratio(FRONTAL) == pytest.approx(0.0)
    assert yaw_ratio(((0.0, 0.0), (40.0, 0.0), (40.0, 20.0))) == pytest.approx(0.5)
    assert yaw_ratio(None) is None
    settings = FaceQualitySettings()
    face = textured_frame()[:48, :48, 0]
    assert quality_problem(settings, (0, 0, 100, 100), face, None) is None
