"""``fer-stream predict`` on the shared photos and videos: faces found, expressions printed, annotated copies written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_stream.cli import main
from fer_stream.config.models import DetectorSettings
from fer_stream.faces import create_detector
from fer_stream.inference.engine import default_model_path
from fer_stream.model_card import ModelCardError

FACE_LINE = re.compile(r"^  face 1: box x=(\d+) y=(\d+) w=(\d+) h=(\d+): ((?:[a-z]+ [01]\.\d\d(?:, )?)+)$", re.MULTILINE)
TRACK_LINE = re.compile(r"^  track (\d+): (\d+\.\d\d)-(\d+\.\d\d) s, (\d+) frames: ((?:[a-z]+ [01]\.\d\d(?:, )?)+)$", re.MULTILINE)


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


def test_predict_finds_yunet_in_the_shared_data_by_default(model, media_dir, capsys):
    assert main(["predict", str(media_dir / "one_face.jpg"), "--model", str(model)]) == 0
    assert "1 face (yunet" in capsys.readouterr().out


def test_predict_falls_back_to_haar_and_reports_unreadable_images(model, media_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FER_STREAM_SHARED", str(tmp_path / "no-shared-data-here"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    code = main(["predict", str(broken), str(media_dir / "one_face.jpg"), "--model", str(model), "--top", "7"])
    captured = capsys.readouterr()
    assert "FER_STREAM_SHARED" in captured.err and "--detector-model" in captured.err
    assert "detector.model_path" not in captured.err, "predict takes no config keys"
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


def read_frames(video: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            capture.release()
            return frames
        frames.append(frame)


def test_predict_on_a_video_prints_its_tracks_and_writes_an_annotated_copy(model, media_dir, yunet_model, tmp_path, capsys):
    video, out_dir = media_dir / "smiling_woman_phone.mp4", tmp_path / "annotated"
    code = main(["predict", str(video), "--model", str(model), "--detector-model", str(yunet_model), "--annotate-dir", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(rf"^{re.escape(str(video))}: 1 face \(yunet\), 4\.\d s, 115 frames at 24\.7 fps", out, re.MULTILINE), out
    [track] = TRACK_LINE.findall(out)
    assert 0 <= float(track[1]) < float(track[2]) <= 4.7 and int(track[3]) > 100 and len(track[4].split(", ")) == 3
    annotated = out_dir / "smiling_woman_phone.annotated.mp4"
    assert f"  annotated: {annotated}" in out

    source, written = read_frames(video), read_frames(annotated)
    assert len(written) == len(source) == 115 and written[0].shape == source[0].shape
    middle = len(source) // 2
    [face] = create_detector(DetectorSettings(backend="yunet", model_path=yunet_model, detect_width=None)).detect(source[middle])
    x, y, w, h = face.box
    changed = np.abs(written[middle].astype(int) - source[middle].astype(int)).max(axis=2) > 60
    near = np.zeros_like(changed)
    near[max(0, y - 60) : y + h + 60, max(0, x - 20) : x + max(w, 320) + 20] = True  # the box and its label
    assert changed[near].sum() > 2 * (w + h), "the face's box and label are drawn"
    assert changed[~near].mean() < 0.01, "away from the face the frame is the source's"


def test_predict_json_on_an_image_and_a_video_with_its_alerts(model, media_dir, yunet_model, capsys):
    image, video = media_dir / "one_face.jpg", media_dir / "angry_man.mp4"
    code = main(["predict", str(image), str(video), "--model", str(model), "--detector-model", str(yunet_model), "--top", "2", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["detector"] == "yunet"
    photo, clip = document["files"]
    assert photo["file"] == str(image) and photo["kind"] == "image" and photo["annotated"] is None
    [face] = photo["faces"]
    assert set(face["box"]) == {"x", "y", "w", "h"} and face["not_classified"] is None
    assert len(face["emotions"]) == 2 and face["emotions"][0]["score"] >= face["emotions"][1]["score"]
    assert clip["file"] == str(video) and clip["kind"] == "video" and clip["frames"] == 469 and clip["tracks"]
    assert all(len(track["emotions"]) == 2 and track["first_s"] <= track["last_s"] for track in clip["tracks"])
    starts = [alert for alert in clip["alerts"] if alert["event"] == "start"]
    assert starts and starts[0]["emotion"] == "angry" and 1.0 <= starts[0]["video_time_s"] <= 10.0


def test_predict_reports_an_unreadable_video_and_goes_on(model, media_dir, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["predict", str(broken), str(media_dir / "one_face.jpg"), "--model", str(model), "--json"]) == 1
    captured = capsys.readouterr()
    assert f"{broken}: cannot open this video" in captured.err
    assert [f["file"] for f in json.loads(captured.out)["files"]] == [str(media_dir / "one_face.jpg")]
