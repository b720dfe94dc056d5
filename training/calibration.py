"""``fer-train calibrate``: fit a model's score calibration on a labelled directory and store it in its card.

Distilled models answer softly (the shipped one's probabilities are
under-confident: the temperature that fits FER-2013 PublicTest best is about
0.6), and their class priors follow FER-2013's training split. A temperature
and a per-class bias, fitted together by negative log-likelihood, make a score
mean what it says, and the card carries them so that the daemon, ``predict``,
``replay``, ``calibrate`` and ``fer-train evaluate`` all see the same scores.
``--flip-average`` also averages each face with its mirror image first
(twice the model time per face). The card's validation block is re-measured
with the calibration in place.

``--votes`` fits on the crowd's vote distributions (``training.votes``) instead
of the folders' one-annotator labels: a face half the crowd calls neutral then
asks for a score near 0.5, not 1.0 for whatever its one annotator said, which is
what an alert threshold on that score needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_stream.model_card import ModelCard, ScoreCalibration, load_card, write_card


def negative_log_likelihood(probabilities: np.ndarray, targets: np.ndarray, temperature: float,
                            bias: np.ndarray) -> float:
    """Mean NLL of ``targets`` (class indices, or one distribution a row) under ``engine.calibrate_scores``,
    in float64 so an optimiser sees small steps."""
    from fer_stream.inference.engine import PROBABILITY_FLOOR

    logits = np.log(np.maximum(probabilities.astype(np.float64), PROBABILITY_FLOOR)) / temperature + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_scores = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    if targets.ndim == 2:
        return float(-np.mean((targets * log_scores).sum(axis=1)))
    return float(-np.mean(log_scores[np.arange(len(targets)), targets]))


def fit_calibration(probabilities: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Temperature and per-class bias (the first class's fixed at 0) that minimise the NLL of ``targets``
    (class indices, or one distribution a row)."""
    from scipy.optimize import minimize

    k = probabilities.shape[1]

    def loss(params: np.ndarray) -> float:
        return negative_log_likelihood(probabilities, targets, float(np.exp(params[0])), np.r_[0.0, params[1:]])

    result = minimize(loss, np.zeros(k), method="Powell", options={"xtol": 1e-4, "ftol": 1e-7})
    return float(np.exp(result.x[0])), np.r_[0.0, result.x[1:]]


def calibrate(model_file: str | Path, data_dir: str | Path, *, flip_average: bool,
              votes: str | Path | None = None) -> ModelCard:
    """Fit, write the calibration and the re-measured validation into the card, and return the card."""
    from fer_stream.inference.engine import load_classifier
    from training.evaluate import predict_directory
    from training.export import validate

    card, path = load_card(model_file)
    backend = "tensorflow" if path.suffix == ".keras" else "litert"
    classifier = load_classifier(path, backend=backend)
    classifier.card = card.model_copy(update={"calibration": None})  # fit on the model's own probabilities
    targets, probabilities, info = predict_directory(classifier, data_dir, tta_flip=flip_average)
    fitted_on = str(data_dir)
    if votes is not None:
        from training.votes import VoteTable

        keep, distributions = VoteTable.read(votes).distributions(info["sources"], tuple(card.labels))
        targets, probabilities, fitted_on = distributions, probabilities[keep], f"{data_dir}, votes {votes}"
    temperature, bias = fit_calibration(probabilities, targets)
    identity = np.zeros(len(card.labels))
    calibration = ScoreCalibration(
        temperature=round(temperature, 4),
        bias=[round(float(b), 4) for b in bias],
        flip_average=flip_average,
        data=fitted_on,
        n=len(targets),
        nll_before=round(negative_log_likelihood(probabilities, targets, 1.0, identity), 4),
        nll_after=round(negative_log_likelihood(probabilities, targets, temperature, bias), 4),
    )
    card = card.model_copy(update={"calibration": calibration})
    write_card(card, path.parent)
    card = card.model_copy(update={"validation": validate(path, data_dir)})
    write_card(card, path.parent)
    return card
