"""Weight averaging over the last epochs: the mean is applied, and reverted when validation gets worse."""

from __future__ import annotations

import keras
import numpy as np

from training.dataset import FaceArrays
from training.train import average_epoch_weights

SIZE = 4


def tiny_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


def save_with_bias(model: keras.Model, bias: np.ndarray, path) -> None:
    kernel = np.zeros(model.layers[-1].get_weights()[0].shape, np.float32)
    model.layers[-1].set_weights([kernel, bias.astype(np.float32)])
    model.save_weights(str(path))


def faces_of_class(label: int, n: int = 20) -> FaceArrays:
    rng = np.random.default_rng(0)
    return FaceArrays(rng.integers(0, 256, (n, SIZE, SIZE), dtype=np.uint8), np.full(n, label), [])


def test_mean_of_epoch_weights_is_kept_when_validation_holds(tmp_path):
    model = tiny_model()
    paths = [tmp_path / "epoch_000.weights.h5", tmp_path / "epoch_001.weights.h5"]
    save_with_bias(model, np.eye(7)[3] * 2.0, paths[0])
    save_with_bias(model, np.eye(7)[3] * 4.0 + np.eye(7)[5] * 1.0, paths[1])
    val = faces_of_class(3)
    result = average_epoch_weights(model, paths, val.faces, val)
    assert result["applied"] and result["epochs"] == [p.name for p in paths]
    assert result["val_accuracy_before"] == result["val_accuracy_after"] == 1.0
    np.testing.assert_allclose(model.layers[-1].get_weights()[1], np.eye(7)[3] * 3.0 + np.eye(7)[5] * 0.5, atol=1e-6)


def test_average_that_loses_accuracy_is_reverted(tmp_path):
    model = tiny_model()
    paths = [tmp_path / "epoch_000.weights.h5", tmp_path / "epoch_001.weights.h5"]
    save_with_bias(model, np.eye(7)[1] * 10.0, paths[0])       # a bad epoch: says class 1
    save_with_bias(model, np.eye(7)[3] * 2.0, paths[1])        # a good one: class 3, but weakly
    current = np.eye(7)[3] * 5.0
    save_with_bias(model, current, tmp_path / "best.weights.h5")
    val = faces_of_class(3)
    result = average_epoch_weights(model, paths, val.faces, val)   # the mean says class 1
    assert not result["applied"]
    assert result["val_accuracy_before"] == 1.0 and result["val_accuracy_after"] == 0.0
    np.testing.assert_allclose(model.layers[-1].get_weights()[1], current)
