"""Face detection (YuNet and the Haar fallback on the shared photos), model verification, cropping, drawing."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_stream.config.models import DetectorSettings
from fer_stream.faces import DetectorError, create_detector, crop_face, draw_annotations
from fer_stream.preprocessing import prepare_face

YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"


@pytest.fixture(scope="module")
def one_face(media_dir: Path) -> np.ndarray:
    return cv2.imread(str(media_dir / "one_face.jpg"))


@pytest.fixture(scope="module")
def no_faces(media_dir: Path) -> np.ndarray:
    return cv2.imread(str(media_dir / "no_faces.jpg"))


@pytest.mark.parametrize("backend", ["yunet", "haar"])
def test_detector_finds_the_one_face_and_nothing_in_an_empty_photo(backend, yunet_model, one_face, no_faces):
    settings = DetectorSettings(backend=backend, model_path=yunet_model if backend == "yunet" else None)
    detector = create_detector(settings)
    assert detector.name == backend
    faces = detector.detect(one_face)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 0 <= x and 0 <= y and x + w <= one_face.shape[1] and y + h <= one_face.shape[0]
    assert w > 80 and h > 80, "the face fills a good part of this photo"
    assert detector.detect(no_faces) == []


def test_auto_picks_haar_without_a_model_and_says_so(caplog):
    caplog.set_level(logging.INFO, logger="fer_stream")
    assert create_detector(DetectorSettings()).name == "haar"
    assert "Haar cascade" in caplog.text


def test_boxes_are_in_full_frame_coordinates_when_detecting_on_a_downscaled_frame(yunet_model, one_face):
    full = create_detector(DetectorSettings(model_path=yunet_model, detect_width=None)).detect(one_face)[0]
    big = cv2.resize(one_face, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    scaled = create_detector(DetectorSettings(model_path=yunet_model, detect_width=400)).detect(big)
    assert len(scaled) == 1
    assert np.allclose(np.array(scaled[0].box) / 3, full.box, atol=8)


def test_min_face_size_drops_small_faces(yunet_model, one_face):
    detector = create_detector(DetectorSettings(model_path=yunet_model, min_face_size=300))
    assert detector.detect(one_face) == []


def test_matching_sha256_is_accepted_and_a_wrong_one_refused(yunet_model):
    assert create_detector(DetectorSettings(model_path=yunet_model, model_sha256=YUNET_SHA256)).name == "yunet"
    with pytest.raises(DetectorError, match="sha256 .* expected 0{64}"):
        create_detector(DetectorSettings(model_path=yunet_model, model_sha256="0" * 64))


def test_unreadable_onnx_is_refused_with_the_file_named(tmp_path: Path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"this is not an onnx model")
    with pytest.raises(DetectorError, match=r"bogus\.onnx: OpenCV cannot load it"):
        create_detector(DetectorSettings(model_path=bogus))
    with pytest.raises(DetectorError, match="no such file"):
        create_detector(DetectorSettings(model_path=tmp_path / "missing.onnx"))


def test_model_url_is_downloaded_once_into_the_cache_and_verified(yunet_model, tmp_path: Path, one_face):
    url = yunet_model.as_uri()  # file:// exercises the same urllib download path without a network
    settings = DetectorSettings(model_url=url, model_sha256=YUNET_SHA256, cache_dir=tmp_path / "cache")
    assert len(create_detector(settings).detect(one_face)) == 1
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and hashlib.sha256(cached[0].read_bytes()).hexdigest() == YUNET_SHA256
    mtime = cached[0].stat().st_mtime_ns
    create_detector(settings)
    assert cached[0].stat().st_mtime_ns == mtime, "a verified cached model is not fetched again"

    wrong = DetectorSettings(model_url=url, model_sha256="f" * 64, cache_dir=tmp_path / "other")
    with pytest.raises(DetectorError, match="download from file://"):
        create_detector(wrong)
    assert list((tmp_path / "other").iterdir()) == [], "a download with the wrong sha256 is not kept"


def test_crop_is_square_around_the_box_and_clipped_to_the_frame():
    frame = np.zeros((200, 300, 3), np.uint8)
    crop = crop_face(frame, (100, 50, 60, 80), margin=0.1)
    assert crop.shape[0] == crop.shape[1] == round(80 * 1.2)
    edge = crop_face(frame, (0, 0, 50, 50), margin=0.2)
    assert edge.shape[:2] == (60, 60), "the part outside the frame is cut off"
    assert prepare_face(crop, 48).shape == (48, 48)
    with pytest.raises(ValueError, match="outside"):
        crop_face(frame, (400, 300, 10, 10))


def test_draw_annotations_returns_an_annotated_copy(one_face):
    before = one_face.copy()
    out = draw_annotations(one_face, [((100, 80, 150, 200), "happy", 0.9, 3), ((10, 10, 40, 40), None, 0.0, None, True)],
                           alerting=True)  # fmt: skip
    assert np.array_equal(one_face, before), "the input frame is not modified"
    assert out.shape == one_face.shape and not np.array_equal(out, one_face)
    assert tuple(out[0, 0]) == (40, 40, 230), "alerting frames get a red border"


@pytest.mark.parametrize("width", [480, 640, 1280])
def test_labels_stay_readable_when_the_frame_is_shown_small(width):
    """The label band above a face is at least 4% of the frame's width, so it stays legible in a console tile."""
    frame = np.zeros((width * 9 // 16, width, 3), np.uint8)
    box = (width // 3, width // 4, width // 6, width // 6)
    out = draw_annotations(frame, [(box, "angry", 0.91, 7)])
    column = out[: box[1], box[0] + 1]  # above the box, inside the label band
    band = np.flatnonzero((column != 0).any(axis=1))
    assert len(band) >= 0.04 * width, f"label band {len(band)} px high on a {width}-px frame"
