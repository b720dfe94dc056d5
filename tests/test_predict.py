"""``fer-stream predict`` on the shared photos: faces found, expressions printed, annotated copies written."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

from fer_stream.cli import main
from fer_stream.inference.engine import default_model_path
from fer_stream.model_card import ModelCardError

FACE_LINE = re.compile(r"^  face 1: box x=(\d+) y=(\d+) w=(\d+) h=(\d+): ((?:[a-z]+ [01]\.\d\d(?:, )?)+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def model() -> Path:
    """The shipped model once it exists; until then the session's tiny smoke-trained export."""
    try:
        return default_model_path()
    except ModelCardError:
        from training_fixtures import smoke_run

        return smoke_run().exported(".tflite")


def test_predict_finds_one_face_and_none_and_writes_annotated_copies(model, media_dir, yunet_model, tmp_path, capsys):
    one, none = media_dir / "one_face.jpg", media_dir / "no_faces.jpg"
    out_dir = tmp_path / "annotated"
    code = main(["predict", str(one), str(none), "--model", str(model), "--detector-model", str(yunet_model),
                 "--annotate-dir", str(out_dir), "--top", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"{one}: 1 face (yunet)" in out and f"{none}: 0 faces (yunet)" in out
    [face] = FACE_LINE.findall(out)
    emotions = face[4].split(", ")
    assert len(emotions) == 2
    probabilities = [float(e.split()[1]) for e in emotions]
    assert probabilities == sorted(probabilities, reverse=True)
    annotated = cv2.imread(str(out_dir / "one_face.annotated.png"))
    assert annotated is not None and annotated.shape == cv2.imread(str(one)).shape
    assert (out_dir / "no_faces.annotated.png").is_file()


def test_predict_falls_back_to_haar_and_reports_unreadable_images(model, media_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    code = main(["predict", str(broken), str(media_dir / "one_face.jpg"), "--model", str(model), "--top", "7"])
    captured = capsys.readouterr()
    assert code == 1, "an unreadable image makes the exit status non-zero"
    assert f"{broken}: cannot read this image" in captured.err
    assert "1 face (haar)" in captured.out, "the other images are still processed"
    [face] = FACE_LINE.findall(captured.out)
    assert len(face[4].split(", ")) == 7
    assert abs(sum(float(e.split()[1]) for e in face[4].split(", ")) - 1.0) < 0.02


def test_predict_refuses_a_bad_detector_model_or_classifier(media_dir, tmp_path, capsys):
    image = str(media_dir / "one_face.jpg")
    assert main(["predict", image, "--detector-model", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx: no such file" in capsys.readouterr().err
    not_a_model = tmp_path / "model.tflite"
    not_a_model.write_bytes(b"junk")
    assert main(["predict", image, "--model", str(not_a_model)]) == 2
    assert "model.tflite" in capsys.readouterr().err


def test_predict_names_a_face_the_quality_gate_holds_back(model, media_dir, yunet_model, tmp_path, capsys):
    image = cv2.imread(str(media_dir / "one_face.jpg"))
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.resize(image, None, fx=1 / 5.5, fy=1 / 5.5, interpolation=cv2.INTER_AREA))
    args = ["predict", str(small), "--model", str(model), "--detector-model", str(yunet_model)]
    assert main(args) == 0
    assert re.search(r"face 1: box x=\d+ y=\d+ w=\d+ h=\d+: not classified \(small\)", capsys.readouterr().out)
    assert main([*args, "--no-quality-gate"]) == 0
    assert FACE_LINE.search(capsys.readouterr().out), "without the gate the same face is classified"
