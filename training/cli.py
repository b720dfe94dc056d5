"""``fer-train``: train, evaluate, calibrate and export the expression model."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

import fer_stream


def _train(args: argparse.Namespace) -> int:
    from fer_stream.model_card import ModelCardError
    from training.distill import DistillationError
    from training.presets import AUGMENTATIONS, PRESETS
    from training.train import ImageNetWeightsMissingError, train
    from training.votes import VotesError

    preset = PRESETS[args.preset]
    overrides = {k: v for k, v in (("epochs", args.epochs), ("alpha", args.alpha), ("input_size", args.input_size),
                                   ("batch_size", args.batch_size), ("architecture", args.architecture),
                                   ("learning_rate", args.learning_rate), ("warmup_epochs", args.warmup_epochs),
                                   ("average_last_epochs", args.average_last),
                                   ("distill_weight", args.distill_weight),
                                   ("teacher_views", args.teacher_views), ("mixup_alpha", args.mixup_alpha),
                                   ("per_class_cap", args.per_class_cap), ("logit_adjustment", args.logit_adjustment),
                                   ("augmentation", AUGMENTATIONS.get(args.augmentation))) if v is not None}
    if overrides:
        preset = preset.model_copy(update=overrides)
        preset = type(preset).model_validate(preset.model_dump())
    try:
        result = train(preset, args.data, args.out, val_dir=args.val, imagenet_weights_path=args.imagenet_weights,
                       if_no_imagenet=args.if_no_imagenet, seed=args.seed, limit_per_class=args.limit_per_class,
                       workers=args.workers, max_seconds=args.max_minutes * 60 if args.max_minutes else None,
                       init_weights=args.init_weights, teachers=args.teacher, votes=args.votes)
    except (ImageNetWeightsMissingError, DistillationError, ModelCardError, VotesError) as exc:
        print(f"fer-train: {exc}", file=sys.stderr)
        return 2
    if not result.completed:
        print("stopped at the time budget; run the same command again to resume")
    print(f"best val_accuracy {result.best_val_accuracy:.4f}; model {result.model_path}; {result.wall_seconds:.0f}s")
    if args.export_to and result.completed:
        return _export_run(args.out, args.export_to, val=args.val, calib_data=None, version=None, formats="keras,tflite,int8")
    return 0


def _export_run(run: str, out: str, *, val: str | None, calib_data: str | None, version: str | None, formats: str) -> int:
    import keras

    if keras.backend.backend() != "tensorflow":
        # Conversion needs TensorFlow; a run trained under JAX exports in a fresh process.
        cmd = [sys.executable, "-m", "training.cli", "export", "--run", run, "--out", out, "--formats", formats]
        cmd += ["--val", val] if val else []
        return subprocess.call(cmd, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    from fer_stream.model_card import ModelCardError
    from training.dataset import DatasetError
    from training.export import ExportError, export

    try:
        files = export(run, out, val_dir=val, calib_dir=calib_data, version=version,
                       formats=tuple(f.strip() for f in formats.split(",") if f.strip()))
    except (ExportError, DatasetError, ModelCardError) as exc:
        print(f"fer-train export: {exc}", file=sys.stderr)
        return 2
    for path in files:
        print(f"exported {path} (+ {path.name}.card.json)")
    return 0


def _export(args: argparse.Namespace) -> int:
    return _export_run(args.run, args.out, val=args.val, calib_data=args.calib_data, version=args.version, formats=args.formats)


def _evaluate(args: argparse.Namespace) -> int:
    from fer_stream.model_card import ModelCardError
    from training.dataset import DatasetError
    from training.evaluate import evaluate
    from training.votes import VotesError

    try:
        evaluate(args.data, args.out, model=args.model, tta_flip=args.tta_flip, batch_size=args.batch_size, backend=args.backend,
                 votes=args.votes)
    except (DatasetError, ModelCardError, VotesError) as exc:
        print(f"fer-train evaluate: {exc}", file=sys.stderr)
        return 2
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from fer_stream.model_card import ModelCardError
    from training.calibration import calibrate
    from training.dataset import DatasetError
    from training.votes import VotesError

    try:
        for model in args.model:
            card = calibrate(model, args.data, flip_average=args.flip_average, votes=args.votes)
            c, v = card.calibration, card.validation
            print(f"{model}: temperature {c.temperature:g}, bias {c.bias}, NLL {c.nll_before:.4f} -> {c.nll_after:.4f}, "
                  f"accuracy {v.accuracy:.4f}, macro F1 {v.macro_f1:.3f}")
    except (DatasetError, ModelCardError, VotesError) as exc:
        print(f"fer-train calibrate: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    from typing import get_args

    from training.presets import AUGMENTATIONS, PRESETS, TeacherViews

    parser = argparse.ArgumentParser(prog="fer-train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {fer_stream.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset on a directory of label folders")
    t.add_argument("--data", required=True, help="training directory, one folder per label")
    t.add_argument("--val", help="validation directory (else a stratified split of --data, made before oversampling)")
    t.add_argument("--out", required=True, help="output directory (re-running resumes an interrupted run)")
    t.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="the recipe (training/presets.py); the flags below override its fields")
    t.add_argument("--epochs", type=int, help="epochs to train (the preset's by default)")
    t.add_argument("--alpha", type=float, help="MobileNet width multiplier")
    t.add_argument("--input-size", type=int, help="side of the square model input, pixels")
    t.add_argument("--batch-size", type=int, help="faces per optimiser step")
    t.add_argument("--architecture", choices=["mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"],
                   help="the network family")
    t.add_argument("--imagenet-weights", help="path to ImageNet no-top weights (.h5) for presets that use them")
    t.add_argument("--if-no-imagenet", choices=["stop", "scratch"], default="stop",
                   help="what to do when a preset wants ImageNet weights and none can be had")
    t.add_argument("--limit-per-class", type=int, help="use at most N images a class (smoke runs)")
    t.add_argument("--seed", type=int, default=1337, help="seed of the split, shuffling, augmentation and weights")
    t.add_argument("--workers", type=int, default=4, help="threads that prepare batches")
    t.add_argument("--learning-rate", type=float, help="peak learning rate")
    t.add_argument("--warmup-epochs", type=int, help="epochs of linear learning-rate warm-up")
    t.add_argument("--average-last", type=int, metavar="N",
                   help="average the weights of the last N epochs (kept only if validation accuracy does not drop)")
    t.add_argument("--init-weights", help="start from these weights (e.g. an earlier run's best.weights.h5) to fine-tune")
    t.add_argument("--teacher", action="append", metavar="MODEL",
                   help="distil from this exported model (.tflite/.keras with its card); repeat for an ensemble")
    t.add_argument("--distill-weight", type=float, help="weight of the teachers' probabilities in the target (default 0.6)")
    t.add_argument("--teacher-views", choices=get_args(TeacherViews),
                   help="views of each face the teachers average over: flip (2) or shift (10, stronger, 5x the labelling time)")
    t.add_argument("--mixup-alpha", type=float, help="Beta(a, a) mixup; 0 disables")
    t.add_argument("--per-class-cap", type=int, metavar="N",
                   help="exactly N training images a class per epoch (small classes oversampled, big ones undersampled)")
    t.add_argument("--votes", metavar="CSV",
                   help="crowd votes per image (FER+ columns, 'file' relative to the CSV's folder): targets are the "
                        "vote distributions and selection uses the majority label (needed by --preset ferplus)")
    t.add_argument("--logit-adjustment", type=float, metavar="TAU",
                   help="logit-adjusted loss strength (0 = plain cross-entropy; the ferplus preset uses 1)")
    t.add_argument("--augmentation", choices=["preset", *AUGMENTATIONS], default="preset",
                   help="the preset's augmentation, or light (flip, 5%% shift and zoom) for the end of a fine-tune")
    t.add_argument("--max-minutes", type=float, help="stop at the first epoch end after this wall time; rerun to resume")
    t.add_argument("--export-to", help="after training, export the model into this directory (like 'fer-train export')")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="metrics, confusion matrix and ROC curves of an exported model on a labelled directory")
    e.add_argument("--data", required=True, help="directory with one folder per label (e.g. fer2013/val)")
    e.add_argument("--out", required=True, help="where metrics.json, confusion_matrix.png and roc_curves.png go")
    e.add_argument("--model", help="an exported .keras or .tflite (with its card); default: the shipped model the daemon loads")
    e.add_argument("--backend", choices=["auto", "litert", "tensorflow"], default="auto",
                   help="auto: the file's own format (.keras -> tensorflow, .tflite -> litert)")
    e.add_argument("--tta-flip", action="store_true", help="average each face with its mirror image")
    e.add_argument("--batch-size", type=int, default=64, help="faces per model call")
    e.add_argument("--votes", metavar="CSV", help="crowd votes (FER+): also report against the untied majority label")
    e.set_defaults(func=_evaluate)

    c = sub.add_parser("calibrate", help="fit score calibration (temperature, class bias) into exported models' cards")
    c.add_argument("--model", required=True, action="append", help="exported .keras or .tflite with its card (repeatable)")
    c.add_argument("--data", required=True, help="labelled directory to fit on: the selection split (fer2013/val)")
    c.add_argument("--flip-average", action="store_true", help="average each face with its mirror image before calibrating")
    c.add_argument("--votes", metavar="CSV", help="fit on crowd vote distributions (FER+) instead of the folders' labels")
    c.set_defaults(func=_calibrate)

    x = sub.add_parser("export", help="write .keras, float32 and int8 .tflite with model cards from a training run")
    x.add_argument("--run", required=True, help="the --out directory of 'fer-train train'")
    x.add_argument("--out", required=True, help="directory for the exported files and their cards")
    x.add_argument("--val", help="validation directory: each exported file is evaluated on it and the card records it")
    x.add_argument("--calib-data", help="training images for int8 calibration (default: the run's training directory)")
    x.add_argument("--version", help="release string written into the cards (default: today's date, YYYY.MM.DD)")
    x.add_argument("--formats", default="keras,tflite,int8", help="comma-separated subset of keras,tflite,int8")
    x.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
