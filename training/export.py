"""A training run -> the files the daemon loads: ``.keras``, float32 and int8 ``.tflite``, each with its card.

Conversion runs under Keras' TensorFlow backend (a run trained under JAX is
re-loaded there; where that fails, the architecture is rebuilt from the run's
preset and the weights loaded into it). The LiteRT files keep a free batch
dimension so the inference worker can batch any number of faces.
The int8 file is full-integer (int8 in and out), calibrated on training images
fed through the shared preprocessing, never on validation images.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np

from fer_stream.model_card import ModelCard, TrainingData, ValidationMetrics, file_sha256, write_card
from fer_stream.preprocessing import to_model_input
from training.dataset import load_faces, scan_label_folders
from training.presets import Preset
from training.run_record import RunRecord

log = logging.getLogger(__name__)

FORMATS = ("keras", "tflite", "int8")
CALIBRATION_IMAGES = 300


class ExportError(RuntimeError):
    """The run directory cannot be exported; the message says why and what to do."""


@dataclass
class Run:
    """What ``fer-train train`` left in its output directory."""

    path: Path
    record: RunRecord
    model_file: Path

    @property
    def preset(self) -> Preset:
        return self.record.preset

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        run_json = path / "run.json"
        if not run_json.is_file():
            raise ExportError(f"{run_json}: not found. --run must be the --out directory of a finished 'fer-train train'.")
        record = RunRecord.read(run_json)
        model_file = path / f"{record.model_id}.keras"
        if not model_file.is_file():
            raise ExportError(f"{model_file}: missing from the run. Re-run 'fer-train train' with the same --out to finish it.")
        return cls(path, record, model_file)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("tensorflow", "keras", "ai-edge-litert", "numpy", "opencv-python-headless"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def load_keras_model(run: Run):
    """The trained classifier under the TensorFlow backend, whatever backend saved it."""
    import keras

    try:
        return keras.saving.load_model(run.model_file, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure has the same remedy
        log.warning("%s: load_model failed (%s); rebuilding %s from run.json and loading its weights",
                    run.model_file, exc, run.preset.model_id)
        from training.model import build_classifier

        model = build_classifier(run.preset, len(run.record.labels))
        with tempfile.TemporaryDirectory() as tmp:
            shutil.unpack_archive(run.model_file, tmp, format="zip")
            model.load_weights(Path(tmp) / "model.weights.h5")
        return model


def calibration_batches(data_dir: str | Path, labels: list[str], size: int, seed: int, n: int = CALIBRATION_IMAGES):
    """Class-balanced training faces, one at a time, as the int8 converter wants them."""
    files = scan_label_folders(data_dir, tuple(labels))
    rng = np.random.default_rng(seed)
    per_class = -(-n // len(np.unique(files.targets)))
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(files.targets == c))[:per_class]
                                  for c in np.unique(files.targets)]))
    x = to_model_input(load_faces(files, size, idx).faces)
    log.info("int8 calibration on %d training images from %s", len(x), data_dir)
    return x


def convert(model, fmt: str, calibration: np.ndarray | None = None) -> bytes:
    """Keras model -> LiteRT flatbuffer; the batch dimension stays free (-1)."""
    import keras
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "int8":
        if calibration is None:
            raise ValueError("int8 conversion needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()  # the SavedModel step lists every variable on stdout
    try:
        return converter.convert()
    finally:
        if interactive:
            keras.config.enable_interactive_logging()


def export(run_dir: str | Path, out: str | Path, *, val_dir: str | Path | None = None,
           calib_dir: str | Path | None = None, version: str | None = None,
           formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the requested formats of a run into ``out`` with their cards; returns the model files."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"export converts through TensorFlow but Keras runs on '{keras.backend.backend()}': "
                          "run it with KERAS_BACKEND=tensorflow.")
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ExportError(f"unknown export format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}.")
    run = Run.open(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_keras_model(run)
    labels = list(run.record.labels)
    model_id, size = run.preset.model_id, run.preset.input_size
    train_data = run.record.train_data
    base = dict(
        model_id=model_id,
        version=version or date.today().strftime("%Y.%m.%d"),
        labels=labels,
        input_size=size,
        preset=run.preset.name,
        imagenet_weights=run.record.imagenet_weights,
        architecture=f"{run.preset.architecture} alpha={run.preset.alpha} head={run.preset.head} input={size}x{size}x3",
        training_data=TrainingData(path=train_data.path, n_files=train_data.n_files, fingerprint=train_data.fingerprint),
        library_versions=library_versions(),
    )
    written: list[Path] = []
    for fmt in formats:
        if fmt == "keras":
            target = out / f"{model_id}.keras"
            model.save(target)
        else:
            calibration = None
            if fmt == "int8":
                calibration = calibration_batches(calib_dir or train_data.path, labels, size, run.record.seed)
            target = out / (f"{model_id}.int8.tflite" if fmt == "int8" else f"{model_id}.tflite")
            target.write_bytes(convert(model, fmt, calibration))
        card = ModelCard(file=target.name, format="keras" if fmt == "keras" else "tflite",
                         quantization="int8" if fmt == "int8" else "float32", sha256=file_sha256(target), **base)
        write_card(card, out)
        if val_dir is not None:
            card.validation = validate(target, val_dir)
            write_card(card, out)
        log.info("exported %s (%.1f MB)%s", target, target.stat().st_size / 1e6,
                 f", val accuracy {card.validation.accuracy:.4f}" if card.validation else "")
        written.append(target)
    return written


def validate(model_file: Path, val_dir: str | Path) -> ValidationMetrics:
    """Evaluate the exported file itself, through the loader the daemon uses."""
    from fer_stream.inference.engine import load_classifier
    from training.evaluate import predict_directory
    from training.reports import compute_metrics

    backend = "tensorflow" if model_file.suffix == ".keras" else "litert"
    classifier = load_classifier(model_file, backend=backend)
    y_true, probs, _ = predict_directory(classifier, val_dir)
    m = compute_metrics(y_true, probs, classifier.labels)
    return ValidationMetrics(data=str(val_dir), n=m["n"], accuracy=m["accuracy"], macro_f1=m["macro_f1"],
                             per_class=m["per_class"])
