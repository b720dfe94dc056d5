"""Knowledge distillation from exported models ("teachers") into the model being trained.

An ensemble of networks scores higher than any one of them, but the daemon can
afford only one. Distillation keeps part of the ensemble's gain at no inference
cost: the student learns from a blend of the true label and the teachers' mean
probabilities. On FER-2013, whose labels are noisy, the soft targets also say
which faces are ambiguous.

Offline: each teacher labels every training face once, in a few views (see
``TEACHER_VIEWS``), before training starts (seconds to minutes through LiteRT),
and the augmented views of a face reuse its soft target. That costs one pass
per teacher instead of one per training step. The labels are cached in the run
directory, keyed by the teachers' sha256, the views and the faces themselves,
so a resumed run does not label again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from fer_stream.inference.engine import load_classifier
from fer_stream.model_card import load_card
from fer_stream.preprocessing import prepare_face, to_model_input
from training.presets import TeacherViews

log = logging.getLogger(__name__)


class DistillationError(ValueError):
    """A teacher that cannot label this data: wrong label set or order."""


#: The offsets, in steps of ``SHIFT_FRACTION`` of the face's side, at which a
#: teacher sees each face; every view is seen mirrored too and the teacher's
#: probabilities are the mean over all of them. "flip": the face and its mirror
#: image. "shift": also moved left, right, up and down (10 views), within the
#: training augmentation's range. On PublicTest, 2026.11.24.5 scores 0.6818
#: with "flip" and 0.6863 with "shift": a stronger teacher for the same network.
#: Its student gained only when the fine-tune ended on light augmentation
#: without mixup (stages 8 and 9 in docs/training.md).
TEACHER_VIEWS: dict[str, tuple[tuple[int, int], ...]] = {
    "flip": ((0, 0),),
    "shift": ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)),
}
SHIFT_FRACTION = 1 / 24  # 2 pixels of a 48-pixel FER-2013 face


def shifted(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Prepared faces ``(N, S, S)`` moved ``dx`` pixels right and ``dy`` down, edge pixels repeated into the gap."""
    if dx == dy == 0:
        return faces
    size = faces.shape[1]
    padded = np.pad(faces, ((0, 0), (abs(dy), abs(dy)), (abs(dx), abs(dx))), mode="edge")
    return padded[:, abs(dy) - dy:abs(dy) - dy + size, abs(dx) - dx:abs(dx) - dx + size]


def teacher_probabilities(teachers: list[str | Path], faces: np.ndarray, labels: tuple[str, ...], *,
                          views: TeacherViews = "flip", batch_size: int = 256) -> tuple[np.ndarray, list[dict]]:
    """Mean of each teacher's probabilities over ``views`` for prepared uint8 ``faces`` ``(N, S, S)``.

    Teachers are loaded through the daemon's loader, so their cards are checked;
    a teacher with another input size sees the faces resized by the shared
    preprocessing. Returns the probabilities and one description per teacher.
    """
    total = np.zeros((len(faces), len(labels)), dtype=np.float32)
    described = []
    for path in teachers:
        classifier = load_classifier(path)
        if tuple(classifier.labels) != tuple(labels):
            raise DistillationError(
                f"teacher {path}: its labels {classifier.labels} are not the training labels {list(labels)} in the "
                f"same order; a teacher must be trained on the same classes")
        step = max(1, round(classifier.input_size * SHIFT_FRACTION))
        probs = np.zeros_like(total)
        for start in range(0, len(faces), batch_size):
            chunk = faces[start:start + batch_size]
            if chunk.shape[1] != classifier.input_size:
                chunk = np.stack([prepare_face(f, classifier.input_size) for f in chunk])
            for dx, dy in TEACHER_VIEWS[views]:
                x = to_model_input(shifted(chunk, dx * step, dy * step))
                # The model's own probabilities: a card's score calibration is for alerts, not part of the recipe.
                probs[start:start + len(x)] += (classifier.predict_uncalibrated(x)
                                                + classifier.predict_uncalibrated(np.ascontiguousarray(x[:, :, ::-1])))
        probs /= 2 * len(TEACHER_VIEWS[views])
        total += probs
        described.append({"path": str(path), "model_id": classifier.card.model_id, "version": classifier.card.version,
                          "sha256": classifier.card.sha256, "quantization": classifier.card.quantization})
        log.info("teacher %s labelled %d faces", path, len(faces))
    return total / max(1, len(teachers)), described


def blend_targets(one_hot: np.ndarray, soft: np.ndarray | None, weight: float) -> np.ndarray:
    """``(1 - weight) * one_hot + weight * soft``; the one-hot targets alone without teachers."""
    if soft is None or weight == 0:
        return one_hot
    return ((1 - weight) * one_hot + weight * soft).astype(np.float32)


def _cache_key(teachers: list[str | Path], views: TeacherViews, faces: np.ndarray, val_faces: np.ndarray) -> str:
    digest = hashlib.sha256(views.encode())
    for teacher in teachers:
        digest.update(load_card(teacher)[0].sha256.encode())
    for array in (faces, val_faces):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def label_with_teachers(teachers: list[str | Path], faces: np.ndarray, targets: np.ndarray, val_faces: np.ndarray,
                        val_targets: np.ndarray, labels: tuple[str, ...], cache: Path,
                        views: TeacherViews = "flip") -> tuple[np.ndarray, dict]:
    """The teachers' soft targets for the training faces, and what ``run.json`` records of them.

    ``cache`` (an ``.npz`` in the run directory) is reused only when the same
    teachers (by sha256) labelled the same training and validation faces in the same views.
    """
    key = _cache_key(teachers, views, faces, val_faces)
    if cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                log.info("teachers' labels reused from %s", cache)
                return stored["train"], json.loads(str(stored["record"]))
        log.info("%s holds other teachers' or faces' labels; labelling again", cache)
    soft, described = teacher_probabilities(teachers, faces, labels, views=views)
    val_probs, _ = teacher_probabilities(teachers, val_faces, labels, views=views)
    record = {"teachers": described, "teacher_views": views,
              "teacher_train_accuracy": float((soft.argmax(1) == targets).mean()),
              "teacher_val_accuracy": float((val_probs.argmax(1) == val_targets).mean())}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache, "wb") as f:  # np.savez would add ".npz" to a name without it
        np.savez(f, key=key, train=soft, record=json.dumps(record))
    return soft, record
