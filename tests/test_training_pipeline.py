"""Smoke: train on a tiny subset -> export -> evaluate, through the real CLI and files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from training_fixtures import FER_TRAIN, LABELS, SMOKE_SIZE, smoke_run

from fer_stream.inference.engine import load_classifier
from fer_stream.model_card import load_card
from training.cli import main
from training.dataset import scan_label_folders

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.is_file(), path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f"{path} is not a real plot"


def test_training_run_writes_model_history_and_curves():
    run = smoke_run().run
    info = json.loads((run / "run.json").read_text())
    assert (run / f"{info['model_id']}.keras").is_file()
    assert info["labels"] == list(LABELS)
    assert info["preset"]["input_size"] == SMOKE_SIZE and info["imagenet_weights"] is False
    assert info["train_data"]["fingerprint"] == scan_label_folders(FER_TRAIN).fingerprint()
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} <= set(header)
    assert_png(run / "training_curves.png")
    averaging = info["weight_averaging"]  # --average-last 2 of 2 epochs
    assert averaging["epochs"] == ["epoch_000.weights.h5", "epoch_001.weights.h5"]
    assert all((run / "epochs" / name).is_file() for name in averaging["epochs"])
    assert 0.0 <= averaging["val_accuracy_before"] <= 1.0 and 0.0 <= averaging["val_accuracy_after"] <= 1.0


@pytest.mark.parametrize("suffix, fmt, quantization", [(".keras", "keras", "float32"), (".tflite", "tflite", "float32"),
                                                       (".int8.tflite", "tflite", "int8")])
def test_every_export_has_a_valid_card(suffix, fmt, quantization):
    smoke = smoke_run()
    card, model_file = load_card(smoke.exported(suffix))  # verifies sha256 and preprocessing id
    assert model_file == smoke.exported(suffix)
    assert (card.format, card.quantization, card.version) == (fmt, quantization, "0.0.test")
    assert card.labels == list(LABELS) and card.input_size == SMOKE_SIZE and card.input_channels == 3
    assert card.preset == "default" and card.imagenet_weights is False and "mobilenet" in card.architecture
    assert card.training_data.fingerprint == scan_label_folders(FER_TRAIN).fingerprint()
    assert {"tensorflow", "keras", "numpy", "python"} <= set(card.library_versions)
    assert card.validation is not None and card.validation.n == 12 * len(LABELS)
    assert 0.0 <= card.validation.accuracy <= 1.0 and set(card.validation.per_class) == set(LABELS)


@pytest.mark.parametrize("suffix", [".tflite", ".int8.tflite"])
def test_tflite_batch_dimension_is_dynamic(suffix):
    from ai_edge_litert.interpreter import Interpreter

    path = smoke_run().exported(suffix)
    assert Interpreter(model_path=str(path)).get_input_details()[0]["shape_signature"][0] == -1
    classifier = load_classifier(path, backend="litert")
    x = np.random.default_rng(0).random((7, SMOKE_SIZE, SMOKE_SIZE, 3), dtype=np.float32)
    for n in (1, 7, 3):
        probs = classifier.predict(x[:n])
        assert probs.shape == (n, len(LABELS)) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(classifier.predict(x[:3]), classifier.predict(x)[:3], atol=1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".int8.tflite"])
def test_evaluate_writes_metrics_plots_and_table(suffix, tmp_path, capsys):
    smoke = smoke_run()
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(smoke.val), "--out", str(out), "--model", str(smoke.exported(suffix)),
                 "--tta-flip", "--batch-size", "16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "labels", "n", "confusion_matrix", "per_class"} <= set(metrics)
    assert metrics["labels"] == list(LABELS) and metrics["n"] == 12 * len(LABELS)
    assert np.asarray(metrics["confusion_matrix"]).shape == (7, 7) and np.sum(metrics["confusion_matrix"]) == metrics["n"]
    for label in LABELS:
        assert set(metrics["per_class"][label]) == {"precision", "recall", "f1", "support", "roc_auc"}
        assert metrics["per_class"][label]["support"] == 12
    assert metrics["model"]["backend"] == ("tensorflow" if suffix == ".keras" else "litert")
    assert_png(out / "confusion_matrix.png")
    assert_png(out / "roc_curves.png")
    captured = capsys.readouterr()
    assert "macro avg" in captured.out and "surprise" in captured.out
    assert "evaluate: 84/84 faces (100%)" in captured.err  # progress


def test_evaluate_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--model", str(smoke_run().exported(".tflite"))]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope'}: data directory not found" in err


@pytest.mark.parametrize("suffix", [".tflite", ".int8.tflite"])
def test_exported_model_answers_differently_for_different_faces(suffix):
    """A model whose batch-norm statistics lag its weights answers one class for every face; even a tiny run must not."""
    from fer_stream.preprocessing import to_model_input
    from training.dataset import load_faces

    smoke = smoke_run()
    faces = load_faces(scan_label_folders(smoke.val), SMOKE_SIZE)
    probs = load_classifier(smoke.exported(suffix), backend="litert").predict(to_model_input(faces.faces))
    assert probs.std(axis=0).max() > 1e-3, "the same output for every face"
