"""Load the expression classifier through its model card and run it.

Two backends over one model family: LiteRT (``.tflite``, float32 or int8) on CPU,
and TensorFlow (``.keras``) where a GPU is visible. The LiteRT path never imports
TensorFlow, so the daemon runs on a CPU box with ``ai-edge-litert`` alone.

Every load goes through the card (``fer_stream.model_card.load_card``): its sha256
must match the file, and the model's real input and output shapes must match the
card's input size and label count, so a swapped or mismatched file is refused at
start instead of producing wrong labels.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

from fer_stream.model_card import ModelCard, ModelCardError, card_path_for, load_card
from fer_stream.resources import shipped

log = logging.getLogger(__name__)

#: Shipped models: the checkout's ``models/``, or an installed wheel's copy (fer_stream/resources.py).
MODELS_DIR = shipped("models")
#: One line naming the file in ``models/`` the daemon loads by default.
DEFAULT_POINTER = "DEFAULT"
#: Environment variable that overrides the default model path.
MODEL_ENV = "FER_STREAM_MODEL"

Backend = Literal["auto", "litert", "tensorflow"]


def default_model_path() -> Path:
    """The model the daemon and ``fer-train evaluate`` use when none is named."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelCardError(f"{MODEL_ENV}={override}: no such model file. Point it at an exported .tflite or .keras, or unset it.")
        return path
    pointer = MODELS_DIR / DEFAULT_POINTER
    if not pointer.is_file():
        raise ModelCardError(
            f"{pointer}: missing, so there is no default model. Pass a model path (--model), set {MODEL_ENV}, "
            f"or write the file name of an exported model into {pointer}."
        )
    name = pointer.read_text().strip()
    path = MODELS_DIR / name
    if not name or not path.is_file():
        raise ModelCardError(f"{pointer} names '{name}', which is not a file in {MODELS_DIR}. Fix the name or restore the model.")
    return path


class Classifier:
    """A loaded model: ``predict`` maps ``to_model_input`` batches to class probabilities."""

    def __init__(self, card: ModelCard, model_path: Path, backend: str, runner: _LiteRTRunner | _TensorFlowRunner):
        self.card = card
        self.labels: list[str] = list(card.labels)
        self.input_size: int = card.input_size
        self.backend = backend
        self.model_path = model_path
        self._runner = runner

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, S, S, 3)`` in [0, 1] -> float32 ``(N, C)`` probabilities, calibrated as the card says."""
        batch = np.asarray(batch)
        expected = (self.input_size, self.input_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"{self.model_path.name}: expects a batch of shape (N, {', '.join(map(str, expected))}), got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        calibration = self.card.calibration
        if calibration is None:
            return self._runner.run(batch)
        probabilities = self._runner.run(batch)
        if calibration.flip_average:
            probabilities = (probabilities + self._runner.run(np.ascontiguousarray(batch[:, :, ::-1]))) / 2
        return calibrate_scores(probabilities, calibration.temperature, calibration.bias)

    def predict_uncalibrated(self, batch: np.ndarray) -> np.ndarray:
        """The model's own probabilities (no mirror average, no calibration): what ``fer-train calibrate`` fits."""
        return self._runner.run(np.ascontiguousarray(batch, dtype=np.float32))

    def warmup(self, max_batch: int) -> None:
        """Run the sizes the worker will use first, so the first real batch is not the slow one."""
        for n in sorted({1, max(1, max_batch)}):
            self.predict(np.zeros((n, self.input_size, self.input_size, 3), dtype=np.float32))

    def __repr__(self) -> str:
        return f"Classifier({self.card.model_id} {self.card.version}, {self.card.quantization}, {self.backend}, {self.model_path})"


#: Probabilities are floored here before the logarithm: an int8 softmax reports 0 for anything below 1/256.
PROBABILITY_FLOOR = 1.0 / 512


def calibrate_scores(probabilities: np.ndarray, temperature: float, bias: list[float] | np.ndarray) -> np.ndarray:
    """``softmax(log(p) / temperature + bias)`` row by row (``ModelCard.calibration``)."""
    logits = np.log(np.maximum(probabilities, PROBABILITY_FLOOR)) / temperature + np.asarray(bias, dtype=np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    scores = np.exp(logits)
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)


class _LiteRTRunner:
    """One LiteRT interpreter whose batch dimension follows the batch it is given."""

    def __init__(self, path: Path, num_threads: int | None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        self.input_shape = tuple(int(d) for d in self._input["shape_signature"])
        self.output_shape = tuple(int(d) for d in self._output["shape_signature"])
        self._in_scale, self._in_zero = self._input["quantization"]
        self._out_scale, self._out_zero = self._output["quantization"]

    def run(self, batch: np.ndarray) -> np.ndarray:
        interpreter, n = self._interpreter, batch.shape[0]
        if n != self._batch:
            # Reallocating costs far less than a batch; the worker's sizes repeat anyway.
            interpreter.resize_tensor_input(self._input["index"], [n, *batch.shape[1:]])
            interpreter.allocate_tensors()
            self._batch = n
        dtype = self._input["dtype"]
        if dtype != np.float32:
            info = np.iinfo(dtype)
            batch = np.clip(np.round(batch / self._in_scale) + self._in_zero, info.min, info.max).astype(dtype)
        interpreter.set_tensor(self._input["index"], batch)
        interpreter.invoke()
        out = interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] != np.float32:
            out = (out.astype(np.float32) - self._out_zero) * np.float32(self._out_scale)
            # A quantised softmax comes in 1/256 steps and sums to 1 only within a few of them. Renormalised,
            # published probabilities and alert thresholds mean the same for int8 and float models.
            out /= np.maximum(out.sum(axis=1, keepdims=True), np.float32(1e-6))
        return out.astype(np.float32, copy=False)


class _TensorFlowRunner:
    """A Keras model behind one traced function with a free batch dimension."""

    def __init__(self, path: Path):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        try:
            import keras
            import tensorflow as tf
        except ImportError as exc:
            raise ModelCardError(f"{path}: the tensorflow backend needs TensorFlow and Keras ({exc}). "
                                 "Install them (pip install 'fer-stream[train]') or use the litert backend.") from exc

        if keras.backend.backend() != "tensorflow":
            raise ModelCardError(f"{path}: the TensorFlow backend needs KERAS_BACKEND=tensorflow (it is '{keras.backend.backend()}').")
        model = keras.saving.load_model(path, compile=False)
        self.input_shape = tuple(-1 if d is None else int(d) for d in model.input_shape)
        self.output_shape = tuple(-1 if d is None else int(d) for d in model.output_shape)
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(batch), dtype=np.float32)


def _gpu_visible() -> bool:
    """True when TensorFlow sees a GPU. Skips importing TensorFlow on boxes with no NVIDIA device node."""
    if importlib.util.find_spec("tensorflow") is None or not glob.glob("/dev/nvidia[0-9]*"):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _sibling(card: ModelCard, model_file: Path, fmt: str) -> Path | None:
    """The same model in another format (``<model_id>.keras`` / ``<model_id>.tflite``), if exported with its card."""
    if card.format == fmt:
        return model_file
    candidate = model_file.with_name(f"{card.model_id}.{fmt}")
    return candidate if candidate.is_file() and card_path_for(candidate).is_file() else None


def _check_shapes(card: ModelCard, model_file: Path, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> None:
    expected_in = (card.input_size, card.input_size, card.input_channels)
    if tuple(input_shape[1:]) != expected_in:
        raise ModelCardError(
            f"{model_file}: the model takes input {tuple(input_shape[1:])} but its card says {expected_in}. "
            "The card belongs to another model; re-export the model with 'fer-train export'."
        )
    if output_shape[-1] != len(card.labels):
        raise ModelCardError(
            f"{model_file}: the model has {output_shape[-1]} outputs but its card lists {len(card.labels)} labels "
            f"({', '.join(card.labels)}). The card belongs to another model; re-export the model with 'fer-train export'."
        )


def load_classifier(path: str | Path | None = None, backend: Backend = "auto", num_threads: int | None = None) -> Classifier:
    """Load a model (``.tflite``, ``.keras`` or its card) for inference.

    ``auto`` picks TensorFlow on the ``.keras`` export when TensorFlow sees a GPU
    (even when ``path`` names an int8 file: the GPU runs the float model), and
    LiteRT on the named ``.tflite`` (or the float ``.tflite`` beside a ``.keras``) otherwise.
    ``num_threads`` applies to LiteRT.
    """
    card, model_file = load_card(default_model_path() if path is None else path)
    if backend == "auto":
        keras_file = _sibling(card, model_file, "keras")
        tflite_file = _sibling(card, model_file, "tflite")
        backend = "tensorflow" if keras_file is not None and (tflite_file is None or _gpu_visible()) else "litert"
    if backend not in ("litert", "tensorflow"):
        raise ValueError(f"backend must be auto, litert or tensorflow, not {backend!r}")

    fmt = "tflite" if backend == "litert" else "keras"
    target = _sibling(card, model_file, fmt)
    if target is None:
        raise ModelCardError(
            f"{model_file}: the {backend} backend needs the .{fmt} export of {card.model_id} beside it, with its card. "
            f"Export it with 'fer-train export', or choose the other backend."
        )
    if target != model_file:
        card, model_file = load_card(target)
    runner = _LiteRTRunner(model_file, num_threads) if backend == "litert" else _TensorFlowRunner(model_file)
    _check_shapes(card, model_file, runner.input_shape, runner.output_shape)
    log.info("loaded %s (%s, %s) with %s", model_file.name, card.model_id, card.quantization, backend)
    return Classifier(card, model_file, backend, runner)
