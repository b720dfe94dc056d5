"""Training and the daemon feed the model the same pixels.

Training path: ``training.dataset.load_faces`` + ``training.train.FaceBatches``
(no shuffle, no mixup). Daemon path: ``prepare_face`` on the raw BGR crop, as a
camera worker has it, then ``to_model_input``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from training_fixtures import FER_VAL, LABELS, SHARED, require_shared, small_label_dir

from fer_stream.preprocessing import PREPROCESSING_ID, prepare_face, to_model_input
from training.dataset import load_faces, scan_label_folders
from training.train import FaceBatches


def training_path(root, size):
    files = scan_label_folders(root)
    arrays = load_faces(files, size)
    x, y = FaceBatches(arrays.faces, arrays.targets, len(LABELS), batch_size=len(arrays.faces), shuffle=False)[0]
    return files.paths, x, y


def daemon_path(paths, size):
    return to_model_input([prepare_face(cv2.imread(str(p), cv2.IMREAD_COLOR), size) for p in paths])


@pytest.mark.parametrize("size", [48, 96, 224])
def test_fer2013_faces_agree_to_the_pixel(tmp_path, size):
    require_shared()
    root = small_label_dir(tmp_path / "faces", FER_VAL, 4)
    paths, x_train, y = training_path(root, size)
    x_daemon = daemon_path(paths, size)
    assert x_train.dtype == x_daemon.dtype == np.float32
    assert x_train.shape == (4 * len(LABELS), size, size, 3)
    np.testing.assert_array_equal(x_train, x_daemon)
    assert y.argmax(axis=1).tolist() == [k for k in range(len(LABELS)) for _ in range(4)]


@pytest.mark.parametrize("size", [48, 96])
def test_colour_crops_of_any_size_agree_to_the_pixel(tmp_path, size):
    """Colour crops from a real photo, larger and smaller than the model input (INTER_AREA and linear paths)."""
    photo = cv2.imread(str(SHARED / "media" / "one_face.jpg"), cv2.IMREAD_COLOR)
    assert photo is not None, "shared/media/one_face.jpg missing"
    h, w = photo.shape[:2]
    crops = {"happy": photo[h // 4: h // 4 + 150, w // 3: w // 3 + 130], "sad": photo[10:40, 20:60],
             "fear": photo[: min(h, 300), : min(w, 300)]}
    for label, crop in crops.items():
        (tmp_path / label).mkdir()
        cv2.imwrite(str(tmp_path / label / "crop.png"), crop)  # lossless, so the file is the crop
    paths, x_train, _ = training_path(tmp_path, size)
    x_daemon = to_model_input([prepare_face(crops[p.parent.name], size) for p in paths])
    np.testing.assert_array_equal(x_train, x_daemon)


def test_model_input_is_grey_rgb_in_unit_range():
    face = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    x = to_model_input(prepare_face(face, 48))
    assert x.shape == (1, 48, 48, 3) and x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(x[..., 0], x[..., 2]) and PREPROCESSING_ID.endswith("/v1")
