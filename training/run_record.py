"""``run.json``: what a training run was and what it did, written by ``train`` and read by ``export``.

One model, like ``ModelCard`` for an exported file, so the writer and the
readers cannot drift apart on key names. A released model's record in
``models/`` also carries ``training_procedure``, the commands of every stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from training.presets import Preset


class TrainData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    n_files: int
    fingerprint: str
    n_used: int
    unreadable: int


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    preset: Preset
    model_id: str
    labels: list[str]
    train_data: TrainData
    validation_data: str
    validation_duplicates_in_train: int
    imagenet_weights: bool
    best_val_accuracy: float
    batchnorm_recalibration: dict[str, Any] | None
    weight_averaging: dict[str, Any] | None
    wall_seconds: float
    epochs_done: int
    completed: bool
    keras_backend: str
    seed: int
    init_weights: str | None = None
    distillation: dict[str, Any] | None = None
    votes: dict[str, Any] | None = None
    training_procedure: str | None = None

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1, exclude_none=False) + "\n")
