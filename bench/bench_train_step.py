"""How long the default preset's end-to-end training takes on this machine, without training it.

Training speed differs by up to 3x between the machines this project has run on,
so the wall time of a full run is projected from two measured costs: one
optimiser step of the preset's network on a batch (forward, backward, update)
and the CPU augmentation of that batch (``training.train.FaceBatches``). The
input pipeline shares the same cores with the step, so an epoch costs about
their sum.

    .venv/bin/python bench/bench_train_step.py [--preset default] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from training.dataset import FER2013_LABELS  # noqa: E402
from training.model import build_classifier  # noqa: E402
from training.presets import PRESETS  # noqa: E402
from training.train import FaceBatches, compile_for_training  # noqa: E402

TRAINING_FACES = 28_709  # FER-2013's training split


def _seconds_per_call(fn, calls: int) -> float:
    fn()  # the first call traces the graph
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--steps", type=int, default=8, help="timed steps after one warm-up step")
    args = parser.parse_args()

    preset = PRESETS[args.preset]
    rng = np.random.default_rng(0)
    n = preset.batch_size * (args.steps + 1)
    faces = rng.integers(0, 256, (n, preset.input_size, preset.input_size), dtype=np.uint8)
    targets = rng.integers(0, len(FER2013_LABELS), n)
    batches = FaceBatches(faces, targets, len(FER2013_LABELS), preset.batch_size, shuffle=True,
                          mixup_alpha=preset.mixup_alpha, augmentation=preset.augmentation, seed=0)
    steps_per_epoch = -(-TRAINING_FACES // preset.batch_size) if preset.steps_per_epoch is None else preset.steps_per_epoch

    model = compile_for_training(build_classifier(preset, len(FER2013_LABELS)), preset, steps_per_epoch)
    x, y = batches[0]
    step = _seconds_per_call(lambda: model.train_on_batch(x, y), args.steps)
    index = iter(range(1, args.steps + 2))
    augment = _seconds_per_call(lambda: batches[next(index) % len(batches)], args.steps)

    epoch = steps_per_epoch * (step + augment)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, keras {keras.__version__} "
          f"({keras.backend.backend()})")
    print(f"preset {preset.name}: {preset.model_id}, batch {preset.batch_size}, {steps_per_epoch} steps an epoch, "
          f"{preset.epochs} epochs")
    print(f"optimiser step {step:.2f} s, augmentation {augment:.2f} s a batch")
    print(f"projected: {epoch:.0f} s an epoch, {preset.epochs * epoch / 60:.0f} min for the preset "
          f"(validation passes not included)")


if __name__ == "__main__":
    main()
