"""Bad training data: messages that name the place, skips that are counted."""

from __future__ import annotations

import logging
import shutil

import pytest
from training_fixtures import FER_TRAIN, require_shared

from training.dataset import DatasetError, canonical_label, load_faces, scan_label_folders


def test_missing_directory_names_it(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'missing'}: data directory not found"):
        scan_label_folders(tmp_path / "missing")


def test_parent_of_splits_gets_a_hint(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DatasetError, match="pass .*/train"):
        scan_label_folders(tmp_path)


def test_unknown_and_empty_folders_are_skipped_counted_and_reported(tmp_path, caplog):
    require_shared()
    (tmp_path / "Happiness").mkdir()  # a synonym, matched case-insensitively
    (tmp_path / "contempt").mkdir()
    (tmp_path / "sad").mkdir()  # empty
    for f in sorted((FER_TRAIN / "happy").iterdir())[:3]:
        shutil.copy(f, tmp_path / "Happiness" / f.name)
    shutil.copy(f, tmp_path / "contempt" / f.name)
    with caplog.at_level(logging.WARNING):
        files = scan_label_folders(tmp_path)
    assert files.unknown_folders == ["contempt"] and files.empty_folders == ["sad"]
    assert files.counts()["happy"] == 3 and sum(files.counts().values()) == 3
    assert "contempt" in caplog.text and "sad" in caplog.text
    assert canonical_label("Surprised") == "surprise" and canonical_label("contempt") is None


def test_unreadable_images_are_skipped_and_counted(tmp_path, caplog):
    require_shared()
    (tmp_path / "fear").mkdir()
    for f in sorted((FER_TRAIN / "fear").iterdir())[:2]:
        shutil.copy(f, tmp_path / "fear" / f.name)
    (tmp_path / "fear" / "broken.jpg").write_bytes(b"not a jpeg at all")
    files = scan_label_folders(tmp_path)
    with caplog.at_level(logging.WARNING):
        faces = load_faces(files, 48)
    assert len(faces.faces) == 2 and [p.name for p in faces.unreadable] == ["broken.jpg"]
    assert "skipped 1 unreadable image" in caplog.text


def test_nothing_readable_stops(tmp_path):
    (tmp_path / "angry").mkdir()
    (tmp_path / "angry" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match="none of the 1 images could be decoded"):
        load_faces(scan_label_folders(tmp_path), 48)
