"""``fer-train``: train, evaluate, export and try the expression model."""

from __future__ import annotations

import argparse
import logging
import sys


def _train(args: argparse.Namespace) -> int:
    from training.presets import PRESETS
    from training.train import ImageNetWeightsMissing, train

    preset = PRESETS[args.preset]
    overrides = {k: v for k, v in (("epochs", args.epochs), ("alpha", args.alpha), ("input_size", args.input_size),
                                   ("batch_size", args.batch_size), ("architecture", args.architecture)) if v is not None}
    if overrides:
        preset = preset.model_copy(update=overrides)
        preset = type(preset).model_validate(preset.model_dump())
    try:
        result = train(preset, args.data, args.out, val_dir=args.val, imagenet_weights_path=args.imagenet_weights,
                       if_no_imagenet=args.if_no_imagenet, seed=args.seed, limit_per_class=args.limit_per_class,
                       workers=args.workers, max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    except ImageNetWeightsMissing as exc:
        print(f"fer-train: {exc}", file=sys.stderr)
        return 2
    if not result.completed:
        print("stopped at the time budget; run the same command again to resume")
    print(f"best val_accuracy {result.best_val_accuracy:.4f}; model {result.model_path}; {result.wall_seconds:.0f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from training.presets import PRESETS

    parser = argparse.ArgumentParser(prog="fer-train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset on a directory of label folders")
    t.add_argument("--data", required=True, help="training directory, one folder per label")
    t.add_argument("--val", help="validation directory (else a stratified split of --data, made before oversampling)")
    t.add_argument("--out", required=True, help="output directory (re-running resumes an interrupted run)")
    t.add_argument("--preset", choices=sorted(PRESETS), default="default")
    t.add_argument("--epochs", type=int)
    t.add_argument("--alpha", type=float)
    t.add_argument("--input-size", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--architecture", choices=["mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
    t.add_argument("--imagenet-weights", help="path to ImageNet no-top weights (.h5) for presets that use them")
    t.add_argument("--if-no-imagenet", choices=["stop", "scratch"], default="stop",
                   help="what to do when a preset wants ImageNet weights and none can be had")
    t.add_argument("--limit-per-class", type=int, help="use at most N images a class (smoke runs)")
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--workers", type=int, default=4, help="threads that prepare batches")
    t.add_argument("--max-minutes", type=float, help="stop at the first epoch end after this wall time; rerun to resume")
    t.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
