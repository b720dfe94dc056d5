"""Model cards: the contract between a trained model file and everything that loads it.

A model file is never loaded on its own. Its card (``<file>.card.json`` beside it)
says which labels the outputs mean, which input size and preprocessing it
expects, and the sha256 of the exact file it describes. A file that does not
match its card, or a card written for another preprocessing, is refused with a
message that names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fer_stream.preprocessing import PREPROCESSING_ID

CARD_SUFFIX = ".card.json"


class ModelCardError(ValueError):
    """A model file and its card do not belong together, or the card is unusable."""


class ClassMetrics(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int
    roc_auc: float | None = None


class ValidationMetrics(BaseModel):
    """Metrics on the validation split the model was selected on."""

    data: str
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassMetrics] = Field(default_factory=dict)


class ScoreCalibration(BaseModel):
    """How the model's probabilities are turned into calibrated scores, for every consumer of the card alike.

    ``p' = softmax(log(p) / temperature + bias)``, with ``p`` averaged over the
    face and its mirror image first when ``flip_average`` is set. Temperature
    and bias are fitted by negative log-likelihood on ``data`` (``fer-train
    calibrate``), so a score of 0.7 means about 70% there; the bias is a
    per-class prior correction.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(gt=0)
    bias: list[float]
    flip_average: bool = False
    data: str
    n: int
    nll_before: float
    nll_after: float


class TrainingData(BaseModel):
    path: str
    n_files: int
    fingerprint: str = Field(description="sha256 over the sorted relative paths and sizes of the training files")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    card_version: Literal[1] = 1
    model_id: str = Field(description="family and shape, e.g. fer-mobilenet-a050-96")
    version: str = Field(description="release of this model_id, e.g. 2026.11.24")
    file: str = Field(description="file name of the model this card describes, relative to the card")
    format: Literal["keras", "tflite"]
    quantization: Literal["float32", "int8"] = "float32"
    sha256: str
    labels: list[str]
    input_size: int
    input_channels: Literal[3] = 3
    preprocessing: str = PREPROCESSING_ID
    preset: str
    imagenet_weights: bool
    architecture: str
    training_data: TrainingData | None = None
    validation: ValidationMetrics | None = None
    calibration: ScoreCalibration | None = None
    library_versions: dict[str, str] = Field(default_factory=dict)
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def card_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_card(card: ModelCard, directory: Path) -> Path:
    path = directory / (card.file + CARD_SUFFIX)
    path.write_text(card.model_dump_json(indent=2) + "\n")
    return path


def load_card(path: str | Path) -> tuple[ModelCard, Path]:
    """Load and verify a card; ``path`` may name the model file or its card.

    Returns the card and the verified model file path.
    """
    path = Path(path)
    card_file = path if path.name.endswith(CARD_SUFFIX) else card_path_for(path)
    if not card_file.is_file():
        raise ModelCardError(
            f"{card_file}: model card not found. fer-stream loads models only with their card; "
            f"export the model with 'fer-train export' or point to a model that has a '{CARD_SUFFIX}' file beside it."
        )
    try:
        card = ModelCard.model_validate_json(card_file.read_bytes())
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{card_file}: not a valid fer-stream model card: {exc}") from exc
    model_file = card_file.with_name(card.file)
    if not model_file.is_file():
        raise ModelCardError(f"{card_file}: the model file it describes, {model_file}, is missing.")
    actual = file_sha256(model_file)
    if actual != card.sha256:
        raise ModelCardError(
            f"{model_file}: sha256 {actual[:12]}… does not match its card ({card.sha256[:12]}…). "
            "The file was replaced or corrupted; re-export it with 'fer-train export' or restore the original."
        )
    if card.calibration is not None and len(card.calibration.bias) != len(card.labels):
        raise ModelCardError(
            f"{card_file}: its calibration has {len(card.calibration.bias)} biases for {len(card.labels)} labels; "
            "fit it again with 'fer-train calibrate'."
        )
    if card.preprocessing != PREPROCESSING_ID:
        raise ModelCardError(
            f"{card_file}: model expects preprocessing '{card.preprocessing}' but this fer-stream "
            f"implements '{PREPROCESSING_ID}'. Retrain/export the model with this version."
        )
    return card, model_file
