"""Train a preset on a label-folder directory and write the best model.

Outputs (in ``out``): ``<model_id>.keras`` (best validation accuracy),
``history.csv`` and ``training_curves.png``, ``run.json`` (preset, data
summary, fingerprint, wall time), ``backup/`` so an interrupted run
resumes where it stopped when started again with the same arguments, and
(with teachers) ``teacher_targets.npz``, so the resumed run does not label again.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from fer_stream.model_card import load_card
from fer_stream.preprocessing import to_model_input
from training.augment import augment_faces
from training.dataset import (
    FER2013_LABELS,
    FaceArrays,
    LabelledFiles,
    cap_per_class,
    content_groups,
    load_faces,
    scan_label_folders,
    split_validation,
)
from training.distill import blend_targets, label_with_teachers
from training.model import build_classifier
from training.presets import Augmentation, Preset
from training.run_record import RunRecord, TrainData
from training.votes import VotesError, VoteTable

log = logging.getLogger(__name__)

KERAS_IMAGENET_CACHE = Path.home() / ".keras" / "models"


class FaceBatches(keras.utils.PyDataset):
    """Batches of prepared faces through the shared ``to_model_input``; mixup optional.

    The true label is ``label_targets``' row (a crowd's vote distribution) where
    given, else the one-hot of ``targets``. With ``soft_targets`` (teachers'
    probabilities, one row a face) the target is ``training.distill.blend_targets``
    of the true label and that row.
    """

    def __init__(self, faces, targets, num_classes, batch_size, *, shuffle, mixup_alpha=0.0,
                 augmentation: Augmentation | None = None, steps=None, seed=0,
                 soft_targets: np.ndarray | None = None, distill_weight: float = 0.0,
                 label_targets: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self.faces, self.targets, self.label_targets = faces, targets, label_targets
        self.soft_targets, self.distill_weight = soft_targets, distill_weight
        self.num_classes, self.batch_size = num_classes, batch_size
        self.shuffle, self.mixup_alpha = shuffle, mixup_alpha
        self.augmentation, self.seed, self.epoch = augmentation, seed, 0
        self.rng = np.random.default_rng(seed)
        self.steps = steps or math.ceil(len(faces) / batch_size)
        self.order = np.arange(len(faces))
        self.on_epoch_end()

    def __len__(self) -> int:
        return self.steps

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)
        self.epoch += 1

    def __getitem__(self, index):
        if self.shuffle:  # wraps around, so a fixed steps_per_epoch always gets full batches
            start = (index * self.batch_size) % len(self.order)
            idx = np.take(self.order, range(start, start + self.batch_size), mode="wrap")
        else:
            idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))  # loader threads never share one
        faces = self.faces[idx]
        if self.augmentation is not None:
            faces = augment_faces(faces, self.augmentation, rng)
        x = to_model_input(faces)
        if self.label_targets is not None:
            y = self.label_targets[idx].astype(np.float32)
        else:
            y = np.eye(self.num_classes, dtype=np.float32)[self.targets[idx]]
        y = blend_targets(y, None if self.soft_targets is None else self.soft_targets[idx], self.distill_weight)
        if self.mixup_alpha > 0:
            lam = np.float32(rng.beta(self.mixup_alpha, self.mixup_alpha))
            perm = rng.permutation(len(idx))
            x = lam * x + (1 - lam) * x[perm]
            y = lam * y + (1 - lam) * y[perm]
        return x, y


class ImageNetWeightsMissingError(RuntimeError):
    pass


def resolve_imagenet_weights(preset: Preset, weights_path: str | None, if_missing: str) -> str | None:
    """Where ImageNet weights come from, or None to train from scratch.

    Order: an explicit path, then Keras' own cache. There is no silent download
    fallback on machines without network: the caller chose 'stop' or 'scratch'.
    """
    if not preset.imagenet_weights:
        return None
    if weights_path:
        if not Path(weights_path).is_file():
            raise ImageNetWeightsMissingError(f"--imagenet-weights {weights_path}: file not found.")
        return weights_path
    alpha = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(preset.alpha, str(preset.alpha))
    cached = KERAS_IMAGENET_CACHE / f"mobilenet_{alpha}_{preset.input_size}_tf_no_top.h5"
    if preset.architecture == "mobilenet" and cached.is_file():
        return str(cached)
    message = (
        f"ImageNet weights for {preset.architecture} alpha={preset.alpha} at {preset.input_size}px are not in "
        f"{KERAS_IMAGENET_CACHE} and no --imagenet-weights path was given (this machine may have no network)."
    )
    if if_missing == "scratch":
        log.warning("%s Training from scratch as requested (--if-no-imagenet scratch).", message)
        return None
    raise ImageNetWeightsMissingError(message + " Pass --imagenet-weights PATH, or --if-no-imagenet scratch to train from random weights.")


def _logged_val_accuracy(history_csv: Path) -> list[float]:
    """Validation accuracy of every epoch logged so far, across resumed legs."""
    if not history_csv.exists():
        return []
    with open(history_csv) as fh:
        return [float(r["val_accuracy"]) for r in csv.DictReader(fh)]


def _earlier_legs_seconds(run_json: Path) -> float:
    """Wall time of the legs before this resume, so run.json states the whole run's."""
    if not run_json.exists():
        return 0.0
    earlier = json.loads(run_json.read_text())
    return 0.0 if earlier.get("completed", True) else float(earlier.get("wall_seconds", 0.0))


def best_checkpoint(best_weights: Path) -> keras.callbacks.ModelCheckpoint:
    """Keeps the best epoch's weights. On a resume the earlier legs' best (from the run's
    history.csv) still counts, or the first epoch of the new leg would overwrite a better checkpoint."""
    history = best_weights.parent / "history.csv"
    earlier = max(_logged_val_accuracy(history), default=None) if best_weights.exists() else None
    return keras.callbacks.ModelCheckpoint(str(best_weights), monitor="val_accuracy", mode="max",
                                           save_best_only=True, save_weights_only=True,
                                           initial_value_threshold=earlier)


class StopAfter(keras.callbacks.Callback):
    """Stop cleanly at an epoch boundary once a wall-time budget is spent; the
    backup lets the same command resume later with the schedule intact."""

    def __init__(self, seconds: float):
        super().__init__()
        self.deadline = time.monotonic() + seconds
        self.stopped_early = False

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 >= self.params.get("epochs", epoch + 1)  # a finished schedule is not a stop
        if time.monotonic() >= self.deadline and not last:
            self.stopped_early = True
            self.model.stop_training = True


def _accuracy(model: keras.Model, arrays: FaceArrays, batch_size: int = 256) -> float:
    probs = np.concatenate([model.predict_on_batch(to_model_input(arrays.faces[i:i + batch_size]))
                            for i in range(0, len(arrays.faces), batch_size)])
    return float(np.mean(probs.argmax(axis=1) == arrays.targets))


def _trainable_batchnorm(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _trainable_batchnorm(layer)
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            yield layer


def recompute_batchnorm_statistics(model: keras.Model, faces: np.ndarray, *, batch_size: int = 128,
                                   max_batches: int = 100, seed: int = 0) -> int:
    """Set the moving statistics to their exact average over clean training batches; returns the faces used."""
    layers = list(_trainable_batchnorm(model))
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    order = np.random.default_rng(seed).permutation(len(faces))[: batch_size * max_batches]
    try:
        for k, start in enumerate(range(0, len(order), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1)  # running mean over the batches seen so far
            model(to_model_input(faces[np.sort(order[start:start + batch_size])]), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return int(len(order))


def recalibrate_batchnorm(model: keras.Model, faces: np.ndarray, val: FaceArrays, *, seed: int = 0) -> dict:
    """Precise BN: recompute the moving statistics, kept only if validation accuracy does not drop.

    The moving averages kept during training lag the weights (most at the best
    checkpoint of a short run, see ``training.model.SCRATCH_BN_MOMENTUM``) and were
    gathered on augmented, mixed-up batches, unlike what inference sees.
    """
    if not any(True for _ in _trainable_batchnorm(model)):
        return {"applied": False, "reason": "no trainable batch normalisation"}
    before = _accuracy(model, val)
    saved_weights = model.get_weights()
    n_faces = recompute_batchnorm_statistics(model, faces, seed=seed)
    after = _accuracy(model, val)
    kept = after >= before
    if not kept:
        model.set_weights(saved_weights)
    log.info("batch-norm statistics recomputed on %d training faces: val accuracy %.4f -> %.4f (%s)",
             n_faces, before, after, "kept" if kept else "reverted")
    return {"applied": kept, "val_accuracy_before": before, "val_accuracy_after": after, "faces": n_faces}


class KeepEpochWeights(keras.callbacks.Callback):
    """Save the weights after each of the last epochs (``epoch_NNN.weights.h5``) for averaging."""

    def __init__(self, directory: Path, first_epoch: int):
        super().__init__()
        self.directory, self.first_epoch = directory, first_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.first_epoch:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(str(self.directory / f"epoch_{epoch:03d}.weights.h5"))


def average_epoch_weights(model: keras.Model, paths: list[Path], faces: np.ndarray, val: FaceArrays,
                          *, seed: int = 0) -> dict:
    """Stochastic weight averaging over the tail of the schedule (Izmailov et al., 2018).

    The mean of the last epochs' weights sits nearer the centre of the flat
    region the cosine tail wanders in, which tends to generalise better than any
    one of them at no inference cost. Averaged batch-norm statistics do not match
    averaged weights, so they are recomputed on clean training faces. The result
    replaces the model's weights only if validation accuracy does not drop.
    """
    before = _accuracy(model, val)
    kept = model.get_weights()
    total = None
    for path in paths:
        model.load_weights(str(path))
        weights = model.get_weights()
        total = weights if total is None else [t + w for t, w in zip(total, weights, strict=True)]
    model.set_weights([t / len(paths) for t in total])
    recompute_batchnorm_statistics(model, faces, seed=seed)
    after = _accuracy(model, val)
    applied = after >= before
    if not applied:
        model.set_weights(kept)
    log.info("weights of %d epochs averaged: val accuracy %.4f -> %.4f (%s)", len(paths), before, after,
             "kept" if applied else "reverted")
    return {"applied": applied, "epochs": [p.name for p in paths], "val_accuracy_before": before,
            "val_accuracy_after": after}


@dataclass
class TrainResult:
    model_path: Path
    best_val_accuracy: float
    wall_seconds: float
    imagenet_weights: bool
    completed: bool


@keras.saving.register_keras_serializable(package="fer_train")
class LogitAdjustedCrossEntropy(keras.losses.Loss):
    """Cross-entropy of ``softmax(log p + tau * log prior)`` (logit adjustment, Menon et al., 2021).

    The loss sees the scores shifted by the training prior, so the network's own
    output ``p`` learns the class-balanced decision: by crowd majority the
    training faces hold about 9,300 neutral against 640 fear, and plain
    cross-entropy on them almost never puts angry or fear on top. The card's
    calibration (``fer-train calibrate``) later fits the bias the daemon's scores
    need; the network itself stays balanced.
    """

    def __init__(self, log_prior, tau: float = 1.0, label_smoothing: float = 0.0, name="logit_adjusted_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.log_prior = [float(v) for v in log_prior]
        self.tau, self.label_smoothing = float(tau), float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        shift = ops.convert_to_tensor(self.log_prior, dtype=y_pred.dtype)
        logits = ops.log(ops.clip(y_pred, 1e-7, 1.0)) + self.tau * shift
        return keras.losses.categorical_crossentropy(y_true, logits, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "log_prior": self.log_prior, "tau": self.tau, "label_smoothing": self.label_smoothing}


def compile_for_training(model: keras.Model, preset: Preset, steps_per_epoch: int,
                         prior: np.ndarray | None = None) -> keras.Model:
    """The preset's optimiser, schedule and loss, as ``train`` uses them (``bench/bench_train_step.py`` times it).

    ``prior``: the training targets' class frequencies, for the logit-adjusted loss
    when the preset asks for it (``Preset.logit_adjustment``).
    """
    if preset.logit_adjustment:
        if prior is None:
            raise ValueError("the preset's logit adjustment needs the training prior")
        loss: keras.losses.Loss = LogitAdjustedCrossEntropy(np.log(np.maximum(prior, 1e-6)), preset.logit_adjustment,
                                                            preset.label_smoothing)
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=preset.label_smoothing)
    model.compile(optimizer=_optimizer(preset, steps_per_epoch), loss=loss, metrics=["accuracy"])
    return model


def _optimizer(preset: Preset, steps_per_epoch: int):
    lr = preset.learning_rate
    if preset.schedule == "cosine":
        total = preset.epochs * steps_per_epoch
        warmup = preset.warmup_epochs * steps_per_epoch
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr * 0.1 if warmup else lr,
            decay_steps=max(1, total - warmup),
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
            alpha=0.01,
        )
    if preset.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=preset.weight_decay)
    return keras.optimizers.Adam(learning_rate=lr)


@dataclass
class PreparedData:
    """Training faces (after per-class capping/oversampling) and the validation faces.

    With votes, ``label_targets`` holds each training face's vote distribution
    (``targets`` its top class, for capping) and ``val`` only the faces with an
    untied majority label, which is their target.
    """

    files: LabelledFiles
    faces: np.ndarray
    targets: np.ndarray
    sources: list[Path]
    val: FaceArrays
    val_source: str
    unreadable: int
    val_duplicates_in_train: int
    label_targets: np.ndarray | None = None
    votes: dict | None = None


def prepare_data(preset: Preset, data_dir: str | Path, *, val_dir: str | Path | None = None, seed: int = 1337,
                 limit_per_class: int | None = None, labels: tuple[str, ...] = FER2013_LABELS,
                 votes: VoteTable | None = None) -> PreparedData:
    """Decode, split and cap. Without ``val_dir`` the split is made on source images,
    grouped by identical pixels, before oversampling; augmentation happens later, in the model.
    ``votes`` replace the folders' labels on both sides (``training.votes``)."""
    files = scan_label_folders(data_dir, labels)
    pool = np.arange(len(files.paths))
    if limit_per_class:  # smoke runs: a small, class-balanced subset
        rng = np.random.default_rng(seed)
        pool = np.sort(np.concatenate([
            rng.permutation(np.flatnonzero(files.targets == c))[:limit_per_class] for c in np.unique(files.targets)
        ]))
    arrays = load_faces(files, preset.input_size, pool)
    if val_dir is not None:
        val_files = scan_label_folders(val_dir, labels)
        val_pool = np.arange(len(val_files.paths))
        if limit_per_class:
            val_pool = val_pool[:: max(1, len(val_pool) // (limit_per_class * len(labels)))]
        train_arrays, val = arrays, load_faces(val_files, preset.input_size, val_pool)
        val_source = str(val_dir)
    else:
        tr, va = split_validation(arrays.targets, preset.validation_split, seed, groups=content_groups(arrays.faces))
        train_arrays, val = arrays.subset(tr), arrays.subset(va)
        val_source = f"{data_dir} ({preset.validation_split:.0%} split)"
    label_targets, vote_record = None, None
    if votes is not None:
        n_train, n_val = len(train_arrays.targets), len(val.targets)
        keep, label_targets = votes.distributions(train_arrays.sources, labels)
        train_arrays = train_arrays.subset(keep)
        train_arrays.targets = label_targets.argmax(axis=1)
        val_keep, majority = votes.majority_labels(val.sources, labels)
        val = val.subset(val_keep)
        val.targets = majority
        vote_record = {"file": str(votes.path), "train_faces": len(keep), "train_left_out": n_train - len(keep),
                       "val_faces": len(val_keep), "val_left_out": n_val - len(val_keep)}
        log.info("votes %s: %d of %d training faces have a vote target, %d of %d validation faces a majority label",
                 votes.path, len(keep), n_train, len(val_keep), n_val)
    sel = np.arange(len(train_arrays.targets))
    if preset.per_class_cap:
        sel = cap_per_class(train_arrays.targets, preset.per_class_cap, seed)
    groups = content_groups(np.concatenate([train_arrays.faces, val.faces]))
    duplicates = int(np.isin(groups[len(train_arrays.faces):], groups[:len(train_arrays.faces)]).sum())
    return PreparedData(files, train_arrays.faces[sel], train_arrays.targets[sel], [train_arrays.sources[i] for i in sel],
                        val, val_source, len(arrays.unreadable), duplicates,
                        None if label_targets is None else label_targets[sel], vote_record)


def train(preset: Preset, data_dir: str | Path, out: str | Path, *, val_dir: str | Path | None = None,
          imagenet_weights_path: str | None = None, if_no_imagenet: str = "stop", seed: int = 1337,
          limit_per_class: int | None = None, workers: int = 4,
          max_seconds: float | None = None, init_weights: str | Path | None = None,
          teachers: list[str | Path] | None = None, votes: str | Path | None = None) -> TrainResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    labels = FER2013_LABELS
    weights = resolve_imagenet_weights(preset, imagenet_weights_path, if_no_imagenet)
    for teacher in teachers or ():
        load_card(teacher)  # a missing or mismatched teacher stops the run before the data is decoded
    if preset.labels_from == "votes" and votes is None:
        raise VotesError(f"the {preset.name} preset learns from crowd votes: pass --votes CSV "
                         "(e.g. ../shared/data/fer2013/ferplus.csv)")
    vote_table = VoteTable.read(votes) if votes is not None else None

    data = prepare_data(preset, data_dir, val_dir=val_dir, seed=seed, limit_per_class=limit_per_class, labels=labels,
                        votes=vote_table)
    files, faces, targets, val, val_source = data.files, data.faces, data.targets, data.val, data.val_source
    per_label = dict(zip(labels, np.bincount(targets, minlength=len(labels)).tolist(), strict=True))
    log.info("training on %d faces (%s), validating on %d (%s)", len(faces), per_label, len(val.faces), val_source)
    if data.val_duplicates_in_train:
        log.warning("%d validation face(s) have a pixel-identical copy in the training data (a property of the data set, "
                    "e.g. FER-2013's PublicTest): validation accuracy is slightly optimistic", data.val_duplicates_in_train)

    soft_targets, distillation = None, None
    if teachers:
        soft_targets, record = label_with_teachers(teachers, faces, targets, val.faces, val.targets, labels,
                                                   out / "teacher_targets.npz", views=preset.teacher_views)
        distillation = {**record, "weight": preset.distill_weight}
        log.info("distilling from %d teacher(s), weight %.2f: their mean (%s views) scores %.4f on validation",
                 len(teachers), preset.distill_weight, preset.teacher_views, distillation["teacher_val_accuracy"])
    train_batches = FaceBatches(faces, targets, len(labels), preset.batch_size, shuffle=True,
                                mixup_alpha=preset.mixup_alpha, augmentation=preset.augmentation, steps=preset.steps_per_epoch, seed=seed,
                                soft_targets=soft_targets, distill_weight=preset.distill_weight,
                                label_targets=data.label_targets, workers=workers, use_multiprocessing=False)
    val_batches = FaceBatches(val.faces, val.targets, len(labels), 256, shuffle=False)

    classifier = build_classifier(preset, len(labels), weights)
    if init_weights is not None:  # fine-tune: continue from an earlier run's best weights
        classifier.load_weights(str(init_weights))
    prior = (data.label_targets.mean(axis=0) if data.label_targets is not None
             else np.bincount(targets, minlength=len(labels)) / len(targets))
    trainer = compile_for_training(classifier, preset, len(train_batches), prior=prior)
    best_weights = out / "best.weights.h5"
    callbacks = [
        # Kept when the time budget stops the run, so the same command resumes it.
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        best_checkpoint(best_weights),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    if preset.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                       patience=preset.early_stopping_patience))
    epoch_dir = out / "epochs"
    if preset.average_last_epochs:
        callbacks.append(KeepEpochWeights(epoch_dir, preset.epochs - preset.average_last_epochs))
    budget = StopAfter(max_seconds) if max_seconds else None
    if budget:
        callbacks.append(budget)
    history = trainer.fit(train_batches, validation_data=val_batches, epochs=preset.epochs,
                          callbacks=callbacks, verbose=2)
    if not (budget and budget.stopped_early):
        shutil.rmtree(out / "backup", ignore_errors=True)
    if best_weights.exists():
        trainer.load_weights(str(best_weights))
    recalibration = recalibrate_batchnorm(classifier, faces, val, seed=seed)
    averaging = None
    if preset.average_last_epochs and not (budget and budget.stopped_early):
        averaging = average_epoch_weights(classifier, sorted(epoch_dir.glob("epoch_*.weights.h5")), faces, val, seed=seed)
    model_path = out / f"{preset.model_id}.keras"
    classifier.save(model_path)
    wall = time.monotonic() - started + _earlier_legs_seconds(out / "run.json")
    del history  # after a resume it holds only the last leg; the CSV log holds every epoch
    val_accuracy = _logged_val_accuracy(out / "history.csv")
    best = max(val_accuracy, default=0.0)
    if averaging and averaging["applied"]:
        best = max(best, averaging["val_accuracy_after"])
    run = RunRecord(
        preset=preset,
        model_id=preset.model_id,
        labels=list(labels),
        train_data=TrainData(path=str(data_dir), n_files=len(files.paths), fingerprint=files.fingerprint(),
                             n_used=int(len(faces)), unreadable=data.unreadable),
        validation_data=val_source,
        validation_duplicates_in_train=data.val_duplicates_in_train,
        imagenet_weights=weights is not None,
        best_val_accuracy=best,
        batchnorm_recalibration=recalibration,
        weight_averaging=averaging,
        wall_seconds=wall,
        epochs_done=len(val_accuracy),
        completed=not (budget and budget.stopped_early),
        keras_backend=keras.backend.backend(),
        seed=seed,
        init_weights=str(init_weights) if init_weights else None,
        distillation=distillation,
        votes=None if data.votes is None else {**data.votes, "train_prior": [round(float(p), 4) for p in prior]},
    )
    run.write(out / "run.json")
    try:
        from training.reports import plot_history

        plot_history(out / "history.csv", out / "training_curves.png")
    except ImportError:  # reports need matplotlib, absent on a bare GPU box
        log.warning("matplotlib missing: training_curves.png not written")
    return TrainResult(model_path, best, wall, weights is not None, run.completed)
