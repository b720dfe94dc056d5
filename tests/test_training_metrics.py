"""Evaluation metrics equal scikit-learn's on a fixed set of predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, roc_auc_score

from training.reports import compute_metrics, format_table, plot_confusion_matrix, plot_history, plot_roc_curves

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="module")
def predictions():
    """300 deterministic predictions, right about half the time; 'disgust' never occurs as a true label."""
    rng = np.random.default_rng(2024)
    present = [0, 2, 3, 4, 5, 6]
    y_true = rng.choice(present, size=300, p=[0.1, 0.15, 0.3, 0.2, 0.15, 0.1])
    logits = rng.normal(size=(300, 7))
    logits[np.arange(300), y_true] += rng.choice([0.0, 2.5], size=300)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probs.astype(np.float32)


def test_metrics_equal_sklearn(predictions):
    y_true, probs = predictions
    y_pred = probs.argmax(axis=1)
    m = compute_metrics(y_true, probs, LABELS)

    assert m["labels"] == LABELS and m["n"] == 300
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=range(7), average="macro", zero_division=0), abs=1e-12)
    assert m["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=range(7)).tolist()

    report = classification_report(y_true, y_pred, labels=range(7), target_names=LABELS, output_dict=True, zero_division=0)
    assert m["macro_f1"] == pytest.approx(report["macro avg"]["f1-score"], abs=1e-12)
    for k, label in enumerate(LABELS):
        ours, theirs = m["per_class"][label], report[label]
        assert ours["precision"] == pytest.approx(theirs["precision"], abs=1e-12)
        assert ours["recall"] == pytest.approx(theirs["recall"], abs=1e-12)
        assert ours["f1"] == pytest.approx(theirs["f1-score"], abs=1e-12)
        assert ours["support"] == theirs["support"]
        if label == "disgust":
            assert ours["roc_auc"] is None and ours["support"] == 0
        else:
            assert ours["roc_auc"] == pytest.approx(roc_auc_score(y_true == k, probs[:, k]), abs=1e-12)


def test_ovr_auc_matches_sklearn_multiclass_when_all_classes_occur(predictions):
    y_true, probs = predictions
    y_true = y_true.copy()
    y_true[:5] = 1  # now every class occurs
    m = compute_metrics(y_true, probs, LABELS)
    expected = roc_auc_score(y_true, probs / probs.sum(axis=1, keepdims=True), multi_class="ovr", average=None)
    np.testing.assert_allclose([m["per_class"][label]["roc_auc"] for label in LABELS], expected, atol=1e-9)


def test_table_and_plots(predictions, tmp_path):
    y_true, probs = predictions
    m = compute_metrics(y_true, probs, LABELS)
    table = format_table(m).splitlines()
    assert len(table) == 1 + 7 + 3 and table[0].split() == ["label", "precision", "recall", "f1", "roc_auc", "support"]
    assert table[2].split()[0] == "disgust" and table[2].split()[4] == "-"
    assert table[-1].split()[:2] == ["accuracy", f"{m['accuracy']:.3f}"]

    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.3,1.8,0.35,1.7\n1,0.4,1.6,0.42,1.55\n")
    for png in (plot_confusion_matrix(m["confusion_matrix"], LABELS, tmp_path / "cm.png"),
                plot_roc_curves(y_true, probs, LABELS, tmp_path / "roc.png"),
                plot_history(history, tmp_path / "curves.png")):
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
