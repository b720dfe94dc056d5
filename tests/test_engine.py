"""Model loading through cards: both backends, int8 scaling, and refusals that name the file and the fix."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fer_stream.inference import engine
from fer_stream.inference.engine import MODEL_ENV, Classifier, default_model_path, load_classifier
from fer_stream.model_card import ModelCard, ModelCardError, card_path_for, file_sha256, write_card

SIZE = 48
LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
MODEL_ID = "fer-test-a000-48"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small real network exported as .keras, float32 and int8 .tflite, with cards (no training needed)."""
    import keras

    from training.export import convert

    out = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))
    calibration = np.random.default_rng(0).random((50, SIZE, SIZE, 3), dtype=np.float32)
    files = {"keras": out / f"{MODEL_ID}.keras", "tflite": out / f"{MODEL_ID}.tflite", "int8": out / f"{MODEL_ID}.int8.tflite"}
    model.save(files["keras"])
    files["tflite"].write_bytes(convert(model, "tflite"))
    files["int8"].write_bytes(convert(model, "int8", calibration))
    for fmt, path in files.items():
        write_card(ModelCard(model_id=MODEL_ID, version="t", file=path.name, format="keras" if fmt == "keras" else "tflite",
                             quantization="int8" if fmt == "int8" else "float32", sha256=file_sha256(path), labels=LABELS,
                             input_size=SIZE, preset="test", imagenet_weights=False, architecture="conv8"), out)
    return files


@pytest.fixture
def batch():
    return np.random.default_rng(1).random((5, SIZE, SIZE, 3), dtype=np.float32)


def copy_model(path, dest):
    """A model and its card in a fresh directory, ready to be damaged."""
    dest.mkdir(exist_ok=True)
    shutil.copy(path, dest / path.name)
    shutil.copy(card_path_for(path), dest / card_path_for(path).name)
    return dest / path.name


def test_backends_agree(models, batch):
    tf_model = load_classifier(models["keras"], backend="tensorflow")
    lite = load_classifier(models["tflite"], backend="litert")
    int8 = load_classifier(models["int8"], backend="litert")
    assert (tf_model.backend, lite.backend, int8.backend) == ("tensorflow", "litert", "litert")
    assert isinstance(lite, Classifier) and lite.labels == LABELS and lite.input_size == SIZE
    assert int8.card.quantization == "int8" and lite.model_path == models["tflite"]
    expected = tf_model.predict(batch)
    np.testing.assert_allclose(lite.predict(batch), expected, atol=1e-5)
    dequantised = int8.predict(batch)  # int8 in and out, scaled back to probabilities
    assert dequantised.dtype == np.float32 and dequantised.shape == (5, len(LABELS))
    np.testing.assert_allclose(dequantised, expected, atol=0.03)
    np.testing.assert_allclose(dequantised.sum(axis=1), 1.0, atol=1e-5)  # renormalised, not 1 +- a few 1/256 steps


def test_auto_without_gpu_uses_litert_on_the_float_sibling(models, batch, monkeypatch):
    monkeypatch.setattr(engine, "_gpu_visible", lambda: False)  # the decision, not the model, is under test
    assert load_classifier(models["tflite"]).backend == "litert"
    from_keras = load_classifier(models["keras"])
    assert from_keras.backend == "litert" and from_keras.model_path == models["tflite"]
    assert load_classifier(card_path_for(models["int8"])).model_path == models["int8"]  # a card path works too


def test_predict_checks_shape_and_handles_empty_and_varying_batches(models, batch):
    lite = load_classifier(models["int8"], backend="litert")
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 48, 48, 3\)"):
        lite.predict(batch[..., :1])
    assert lite.predict(batch[:0]).shape == (0, len(LABELS))
    lite.warmup(8)
    np.testing.assert_array_equal(lite.predict(batch[:2]), lite.predict(batch)[:2])


def test_sha256_mismatch_is_refused(models, tmp_path):
    path = copy_model(models["tflite"], tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match=rf"{path}: sha256 .* does not match its card .*re-export"):
        load_classifier(path)


def test_missing_card_is_refused(models, tmp_path):
    path = copy_model(models["tflite"], tmp_path)
    card_path_for(path).unlink()
    with pytest.raises(ModelCardError, match="model card not found.*fer-train export"):
        load_classifier(path)


@pytest.mark.parametrize("fmt", ["tflite", "int8", "keras"])
@pytest.mark.parametrize("change, message", [({"labels": LABELS[:6]}, "has 7 outputs but its card lists 6 labels"),
                                             ({"input_size": 64}, r"takes input \(48, 48, 3\) but its card says \(64, 64, 3\)")])
def test_card_that_does_not_fit_the_model_is_refused(models, tmp_path, fmt, change, message):
    path = copy_model(models[fmt], tmp_path)
    card_file = card_path_for(path)
    card = json.loads(card_file.read_text())
    card.update(change)
    card_file.write_text(json.dumps(card))
    backend = "tensorflow" if fmt == "keras" else "litert"
    with pytest.raises(ModelCardError, match=rf"{path}: the model {message}.*re-export"):
        load_classifier(path, backend=backend)


def test_backend_without_its_file_is_refused(models, tmp_path):
    path = copy_model(models["keras"], tmp_path)
    with pytest.raises(ModelCardError, match=r"litert backend needs the \.tflite export"):
        load_classifier(path, backend="litert")


def test_default_model_path(tmp_path, monkeypatch, models):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(engine, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelCardError, match=f"{tmp_path / 'DEFAULT'}: missing, so there is no default model"):
        default_model_path()
    (tmp_path / "DEFAULT").write_text("gone.tflite\n")
    with pytest.raises(ModelCardError, match="names 'gone.tflite', which is not a file"):
        default_model_path()
    copy_model(models["tflite"], tmp_path)
    (tmp_path / "DEFAULT").write_text(f"{models['tflite'].name}\n")
    assert default_model_path() == tmp_path / models["tflite"].name
    assert load_classifier(backend="litert").model_path == tmp_path / models["tflite"].name

    monkeypatch.setenv(MODEL_ENV, str(models["int8"]))
    assert default_model_path() == models["int8"]
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nope.tflite"))
    with pytest.raises(ModelCardError, match=f"{MODEL_ENV}=.*nope.tflite: no such model file"):
        default_model_path()
