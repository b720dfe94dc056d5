"""Shared data paths and one tiny train -> export run, made once per test session.

Training even a tiny model costs ~15 s on two cores, so the run is cached here
and reused by the pipeline and engine tests.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("FER_STREAM_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
FER_TRAIN = SHARED / "data" / "fer2013" / "train"
FER_VAL = SHARED / "data" / "fer2013" / "val"
LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SMOKE_SIZE = 48


def require_shared() -> None:
    if not FER_TRAIN.is_dir():
        pytest.fail(f"{FER_TRAIN}: shared FER-2013 data not found; set FER_STREAM_SHARED to the shared directory")


def small_label_dir(root: Path, source: Path, per_class: int) -> Path:
    """A label-folder directory of symlinks to the first ``per_class`` files of each class."""
    for label in LABELS:
        (root / label).mkdir(parents=True)
        for f in sorted((source / label).iterdir())[:per_class]:
            (root / label / f.name).symlink_to(f)
    return root


@dataclass(frozen=True)
class SmokeRun:
    root: Path
    run: Path
    export: Path
    val: Path
    model_id: str = f"fer-mobilenet-a050-{SMOKE_SIZE}"

    def exported(self, suffix: str) -> Path:
        return self.export / f"{self.model_id}{suffix}"


@functools.cache
def smoke_run() -> SmokeRun:
    """``fer-train train`` (tiny: 30 faces a class, 2 epochs, 48x48) then ``fer-train export`` with validation."""
    from training.cli import main

    require_shared()
    root = Path(tempfile.mkdtemp(prefix="fer-smoke-"))
    atexit.register(shutil.rmtree, root, True)
    val = small_label_dir(root / "val", FER_VAL, 12)
    run, export = root / "run", root / "export"
    assert main(["train", "--data", str(FER_TRAIN), "--val", str(val), "--out", str(run), "--limit-per-class", "30",
                 "--epochs", "2", "--input-size", str(SMOKE_SIZE), "--alpha", "0.5", "--batch-size", "16", "--workers", "1",
                 "--average-last", "2"]) == 0
    assert main(["export", "--run", str(run), "--out", str(export), "--val", str(val), "--version", "0.0.test"]) == 0
    return SmokeRun(root, run, export, val)
