"""Distillation: teachers' soft targets are what they say, and a wrong teacher is refused before training."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from training_fixtures import FER_TRAIN, LABELS, SMOKE_SIZE, smoke_run

from fer_stream.inference.engine import load_classifier
from fer_stream.model_card import CARD_SUFFIX
from fer_stream.preprocessing import prepare_face, to_model_input
from training import distill
from training.cli import main
from training.dataset import load_faces, scan_label_folders
from training.distill import DistillationError, blend_targets, label_with_teachers, teacher_probabilities
from training.presets import DEFAULT, LIGHT_AUGMENTATION


def test_blend_puts_the_weight_on_the_teachers():
    one_hot = np.eye(7, dtype=np.float32)[[2, 5]]
    soft = np.full((2, 7), 1 / 7, dtype=np.float32)
    np.testing.assert_allclose(blend_targets(one_hot, soft, 0.6), 0.4 * one_hot + 0.6 * soft, atol=1e-7)
    assert blend_targets(one_hot, None, 0.6) is one_hot
    assert blend_targets(one_hot, soft, 0.0) is one_hot


@pytest.mark.parametrize("size", [SMOKE_SIZE, 40])
def test_teacher_probabilities_are_the_mean_of_the_flip_averaged_teachers(size):
    smoke = smoke_run()
    teachers = [smoke.exported(".tflite"), smoke.exported(".int8.tflite")]
    faces = load_faces(scan_label_folders(smoke.val), size).faces[:20]
    probs, described = teacher_probabilities(teachers, faces, LABELS, batch_size=8)

    resized = np.stack([prepare_face(f, SMOKE_SIZE) for f in faces])
    x = to_model_input(resized)
    expected = np.mean([(c.predict(x) + c.predict(x[:, :, ::-1])) / 2
                        for c in (load_classifier(t, backend="litert") for t in teachers)], axis=0)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [d["quantization"] for d in described] == ["float32", "int8"]


def test_shift_views_average_the_face_moved_in_four_directions_and_mirrored():
    """Checked against OpenCV's translation with replicated borders, not the module's own shifting."""
    smoke = smoke_run()
    teacher = smoke.exported(".tflite")
    faces = load_faces(scan_label_folders(smoke.val), SMOKE_SIZE).faces[:10]
    probs, _ = teacher_probabilities([teacher], faces, LABELS, views="shift", batch_size=4)

    step = max(1, round(SMOKE_SIZE / 24))
    classifier = load_classifier(teacher, backend="litert")
    expected = np.zeros_like(probs)
    for dx, dy in [(0, 0), (step, 0), (-step, 0), (0, step), (0, -step)]:
        moved = np.stack([cv2.warpAffine(f, np.float32([[1, 0, dx], [0, 1, dy]]), f.shape[::-1],
                                         borderMode=cv2.BORDER_REPLICATE) for f in faces])
        x = to_model_input(moved)
        expected += classifier.predict(x) + classifier.predict(x[:, :, ::-1])
    np.testing.assert_allclose(probs, expected / 10, atol=1e-6)
    flip_only, _ = teacher_probabilities([teacher], faces, LABELS, views="flip")
    assert not np.allclose(probs, flip_only, atol=1e-4)


def test_teacher_with_other_label_order_is_refused(tmp_path):
    smoke = smoke_run()
    model = smoke.exported(".tflite")
    shutil.copy(model, tmp_path / model.name)
    card = json.loads(model.with_name(model.name + CARD_SUFFIX).read_text())
    card["labels"] = card["labels"][::-1]
    (tmp_path / (model.name + CARD_SUFFIX)).write_text(json.dumps(card))
    faces = np.zeros((2, SMOKE_SIZE, SMOKE_SIZE), np.uint8)
    with pytest.raises(DistillationError, match="not the training labels"):
        teacher_probabilities([tmp_path / model.name], faces, LABELS)


def test_teachers_label_once_per_teachers_and_faces(tmp_path, monkeypatch):
    """A resumed run reuses the labels; other teachers or other faces are labelled afresh."""
    smoke = smoke_run()
    faces = load_faces(scan_label_folders(smoke.val), SMOKE_SIZE)
    train_faces, train_targets = faces.faces[:12], faces.targets[:12]
    val_faces, val_targets = faces.faces[12:20], faces.targets[12:20]
    cache = tmp_path / "teacher_targets.npz"
    calls = []

    def counted(teachers, batch, labels, **kwargs):
        calls.append(len(batch))
        return teacher_probabilities(teachers, batch, labels, **kwargs)

    monkeypatch.setattr(distill, "teacher_probabilities", counted)
    float_teacher, int8_teacher = [smoke.exported(".tflite")], [smoke.exported(".int8.tflite")]
    first = label_with_teachers(float_teacher, train_faces, train_targets, val_faces, val_targets, LABELS, cache)
    assert calls == [12, 8]
    again = label_with_teachers(float_teacher, train_faces, train_targets, val_faces, val_targets, LABELS, cache)
    assert calls == [12, 8]
    np.testing.assert_array_equal(again[0], first[0])
    assert again[1] == first[1] and first[1]["teachers"][0]["path"] == str(float_teacher[0])

    label_with_teachers(int8_teacher, train_faces, train_targets, val_faces, val_targets, LABELS, cache)
    assert calls == [12, 8] * 2
    label_with_teachers(int8_teacher, train_faces[::-1], train_targets[::-1], val_faces, val_targets, LABELS, cache)
    assert calls == [12, 8] * 3
    shift = label_with_teachers(int8_teacher, train_faces[::-1], train_targets[::-1], val_faces, val_targets, LABELS, cache,
                                views="shift")
    assert calls == [12, 8] * 4 and shift[1]["teacher_views"] == "shift"


def test_missing_teacher_stops_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(FER_TRAIN), "--out", str(out), "--teacher", str(tmp_path / "none.tflite"),
                 "--limit-per-class", "5", "--epochs", "1"]) == 2
    assert "none.tflite" in capsys.readouterr().err
    assert not (out / "run.json").exists()


def test_distilled_run_records_its_teachers(tmp_path):
    """Also a fine-tune's options: light augmentation and no mixup reach the preset the run records."""
    smoke = smoke_run()
    out = tmp_path / "run"
    assert main(["train", "--data", str(FER_TRAIN), "--val", str(smoke.val), "--out", str(out), "--limit-per-class", "10",
                 "--epochs", "1", "--input-size", "32", "--alpha", "0.25", "--batch-size", "16", "--workers", "1",
                 "--average-last", "0", "--teacher", str(smoke.exported(".tflite")), "--distill-weight", "0.8",
                 "--augmentation", "light", "--mixup-alpha", "0"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["preset"]["augmentation"] == LIGHT_AUGMENTATION.model_dump()
    assert run["preset"]["augmentation"] != DEFAULT.augmentation.model_dump() and run["preset"]["mixup_alpha"] == 0
    distillation = run["distillation"]
    assert distillation["weight"] == run["preset"]["distill_weight"] == 0.8
    assert [t["path"] for t in distillation["teachers"]] == [str(smoke.exported(".tflite"))]
    assert 0 <= distillation["teacher_val_accuracy"] <= 1 and 0 <= distillation["teacher_train_accuracy"] <= 1
