"""The leak test: without --val, no source file and no identical picture is on both sides of the split."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from training_fixtures import FER_TRAIN, LABELS, require_shared

from training.dataset import content_groups, load_faces, scan_label_folders, split_validation
from training.presets import DEFAULT
from training.train import prepare_data

PER_CLASS = 12
DUPLICATES = 20


@pytest.fixture(scope="module")
def data_with_duplicates(tmp_path_factory):
    """Real FER-2013 files, plus copies of some of them under other names (FER-2013 itself has ~1,270 such groups)."""
    require_shared()
    root = tmp_path_factory.mktemp("split")
    for label in LABELS:
        (root / label).mkdir()
        for f in sorted((FER_TRAIN / label).iterdir())[:PER_CLASS]:
            shutil.copy(f, root / label / f.name)
    originals = sorted(root.glob("*/*.jpg"))
    for i, f in enumerate(originals[:DUPLICATES]):
        other = LABELS[(LABELS.index(f.parent.name) + i % 2) % len(LABELS)]  # some copies even carry another label
        shutil.copy(f, root / other / f"copy_{i}_{f.name}")
    return root


def digest(face: np.ndarray) -> str:
    return hashlib.sha256(face.tobytes()).hexdigest()


def test_split_is_made_on_sources_before_oversampling(data_with_duplicates):
    preset = DEFAULT.model_copy(update={"input_size": 48, "validation_split": 0.25, "per_class_cap": 40})
    data = prepare_data(preset, data_with_duplicates, seed=7)

    train_sources = {p.resolve() for p in data.sources}
    val_sources = [p.resolve() for p in data.val.sources]
    assert len(val_sources) == len(set(val_sources)), "a validation file appears twice"
    assert not train_sources & set(val_sources), "a file is on both sides"
    assert len(train_sources) + len(val_sources) == len(scan_label_folders(data_with_duplicates).paths)

    # oversampling happened, on the training side only
    assert len(data.faces) == 40 * len(LABELS) and len(data.sources) > len(train_sources)
    assert np.bincount(data.targets).tolist() == [40] * len(LABELS)

    train_pixels = {digest(f) for f in data.faces}
    val_pixels = {digest(f) for f in data.val.faces}
    assert not train_pixels & val_pixels, "an identical picture is on both sides"
    assert data.val_duplicates_in_train == 0


def test_grouping_is_what_keeps_copies_together(data_with_duplicates):
    """Without content groups, a plain file split of the same data does leak: the grouping is load-bearing."""
    files = scan_label_folders(data_with_duplicates)
    faces = load_faces(files, 48)
    plain_train, plain_val = split_validation(faces.targets, 0.25, seed=7)
    leaked = {digest(f) for f in faces.faces[plain_train]} & {digest(f) for f in faces.faces[plain_val]}
    assert leaked, "this data set should expose a file-name-only split"

    groups = content_groups(faces.faces)
    assert len(np.unique(groups)) == len(files.paths) - DUPLICATES
    tr, va = split_validation(faces.targets, 0.25, seed=7, groups=groups)
    assert not set(groups[tr]) & set(groups[va])
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(files.paths)))


def test_duplicates_between_a_given_validation_dir_and_training_are_counted(tmp_path, data_with_duplicates):
    val = tmp_path / "val"
    for label in LABELS:
        (val / label).mkdir(parents=True)
    first = sorted((data_with_duplicates / "happy").glob("*.jpg"))[0]
    shutil.copy(first, val / "happy" / "same_picture.jpg")
    shutil.copy(sorted((FER_TRAIN / "sad").iterdir())[-1], val / "sad" / "other.jpg")
    data = prepare_data(DEFAULT.model_copy(update={"input_size": 48}), data_with_duplicates, val_dir=val, seed=7)
    assert data.val_duplicates_in_train == 1
