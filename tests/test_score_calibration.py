"""Score calibration: fitted by NLL, stored in the card, applied by every Classifier the same way."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fer_stream.alerts.config import AlertRules
from fer_stream.alerts.rules import AlertTracker
from fer_stream.inference.engine import calibrate_scores, default_model_path, load_classifier
from fer_stream.model_card import ModelCardError, load_card, write_card
from training.calibration import fit_calibration, negative_log_likelihood

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_fit_recovers_a_known_temperature_and_bias():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (20_000, 4))
    bias = np.array([0.0, 0.8, -0.5, 0.3])
    truth = softmax(logits / 0.5 + bias)  # the real label distribution is sharper and shifted
    targets = np.array([rng.choice(4, p=p) for p in truth])
    temperature, fitted = fit_calibration(softmax(logits).astype(np.float32), targets)
    assert temperature == pytest.approx(0.5, rel=0.06)
    assert fitted == pytest.approx(bias, abs=0.08)
    model_probs = softmax(logits).astype(np.float32)
    assert negative_log_likelihood(model_probs, targets, temperature, fitted) < negative_log_likelihood(
        model_probs, targets, 1.0, np.zeros(4)
    )


def test_the_fit_on_vote_distributions_recovers_a_known_temperature_and_bias():
    """Fitted on each face's distribution of crowd votes rather than one label a face, the NLL is a
    cross-entropy whose minimum is the distribution itself."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (5_000, 4))
    bias = np.array([0.0, -0.6, 0.4, 0.2])
    truth = softmax(logits / 1.6 + bias)  # a model too sure of itself against the crowd
    temperature, fitted = fit_calibration(softmax(logits).astype(np.float32), truth)
    assert temperature == pytest.approx(1.6, rel=0.02)
    assert fitted == pytest.approx(bias, abs=0.03)


def test_identity_calibration_leaves_probabilities_alone():
    p = softmax(np.random.default_rng(1).normal(0, 1, (50, 7))).astype(np.float32)
    assert calibrate_scores(p, 1.0, np.zeros(7)) == pytest.approx(p, abs=1e-6)
    sharper = calibrate_scores(p, 0.5, np.zeros(7))
    assert (sharper.argmax(1) == p.argmax(1)).all() and (sharper.max(1) >= p.max(1) - 1e-6).all()


@pytest.fixture
def model_copy(tmp_path):
    card, path = load_card(default_model_path())
    target = tmp_path / path.name
    shutil.copy(path, target)
    write_card(card, tmp_path)
    return card, target


def test_the_shipped_card_calibrates_with_the_mirror_average(model_copy):
    card, path = model_copy
    assert card.calibration is not None and card.calibration.flip_average
    assert 0.3 < card.calibration.temperature < 1.5 and len(card.calibration.bias) == len(card.labels)
    classifier = load_classifier(path, backend="litert")
    batch = np.random.default_rng(2).random((3, card.input_size, card.input_size, 3), dtype=np.float32)
    mirrored = np.ascontiguousarray(batch[:, :, ::-1])
    assert classifier.predict(batch) == pytest.approx(classifier.predict(mirrored), abs=1e-5)
    raw = classifier.predict_uncalibrated(batch)
    expected = calibrate_scores((raw + classifier.predict_uncalibrated(mirrored)) / 2, card.calibration.temperature,
                                card.calibration.bias)  # fmt: skip
    assert classifier.predict(batch) == pytest.approx(expected, abs=1e-6)


def test_a_card_whose_calibration_does_not_fit_its_labels_is_refused(model_copy):
    card, path = model_copy
    broken = card.calibration.model_copy(update={"bias": [0.0, 0.1]})
    write_card(card.model_copy(update={"calibration": broken}), path.parent)
    with pytest.raises(ModelCardError, match="2 biases for 7 labels"):
        load_card(path)


def test_thresholds_can_differ_per_emotion():
    rules = AlertRules(enter_threshold={"Angry": 0.6, "fear": 0.3}, release_threshold={"angry": 0.4, "fear": 0.2})
    assert rules.enter_for("angry") == 0.6 and rules.enter_for("fear") == 0.3 and rules.enter_for("sad") == 0.4
    tracker = AlertTracker(rules, "door", LABELS, "m", "1", host="t")
    probs = np.full(7, 0.05)
    probs[0] = probs[2] = 0.35  # both at 0.35: above fear's threshold, below angry's
    events = []
    for i in range(60):
        events += tracker.observe(1, probs / probs.sum() * 1.0, 1_790_000_000.0 + i / 10, (0, 0, 50, 50), (640, 360))
    assert [(a.event, a.emotion) for a in events] == [("start", "fear")]


def test_per_emotion_thresholds_are_checked_for_hysteresis_and_labels():
    with pytest.raises(ValueError, match=r"release_threshold \(0.5\) must be below enter_threshold \(0.3\) for fear"):
        AlertRules(enter_threshold={"angry": 0.6, "fear": 0.3}, release_threshold={"fear": 0.5})
    rules = AlertRules(enter_threshold={"angry": 0.6, "contempt": 0.3})
    with pytest.raises(ValueError, match=r"the alert rules name \['contempt'\], which the model does not have"):
        AlertTracker(rules, "door", LABELS, "m", "1")
