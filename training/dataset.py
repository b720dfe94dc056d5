"""Labelled face images on disk -> arrays the trainer and evaluator use.

Layout: one folder per label under a root (FER-2013's ``train/<label>/*.jpg``
and the Kaggle download are both this shape). Folder names are matched to the
seven FER-2013 classes case-insensitively, with common synonyms. Unknown folders,
empty folders and unreadable images are skipped and counted (never fatal unless
nothing usable is left), and the counts are printed, so a user sees what was
left out instead of training on less data than they think.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_stream.preprocessing import prepare_face

log = logging.getLogger(__name__)

FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
LABEL_SYNONYMS = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "calm": "neutral",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".tif", ".tiff"}


class DatasetError(ValueError):
    """The data directory cannot be used; the message says why and what to do."""


@dataclass
class LabelledFiles:
    root: Path
    labels: tuple[str, ...]
    paths: list[Path]
    targets: np.ndarray
    unknown_folders: list[str] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(self.targets.tolist())
        return {name: c.get(i, 0) for i, name in enumerate(self.labels)}

    def fingerprint(self) -> str:
        """sha256 over relative paths and sizes: identifies the data without hashing every byte."""
        digest = hashlib.sha256()
        for path in sorted(self.paths):
            digest.update(f"{path.relative_to(self.root).as_posix()}:{path.stat().st_size}\n".encode())
        return digest.hexdigest()


def canonical_label(folder_name: str, labels: tuple[str, ...] = FER2013_LABELS) -> str | None:
    name = folder_name.strip().lower()
    name = LABEL_SYNONYMS.get(name, name)
    return name if name in labels else None


def scan_label_folders(root: str | Path, labels: tuple[str, ...] = FER2013_LABELS) -> LabelledFiles:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data directory not found. Pass a directory with one folder per label ({', '.join(labels)}).")
    paths: list[Path] = []
    targets: list[int] = []
    unknown: list[str] = []
    empty: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = canonical_label(folder.name, labels)
        if label is None:
            unknown.append(folder.name)
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            empty.append(folder.name)
            continue
        paths.extend(files)
        targets.extend([labels.index(label)] * len(files))
    if unknown:
        log.warning("%s: skipped folders that are not one of the labels %s: %s", root, list(labels), unknown)
    if empty:
        log.warning("%s: label folders with no images: %s", root, empty)
    if not paths:
        hint = ""
        if any((root / sub).is_dir() for sub in ("train", "test", "val")):
            hint = f" It has train/test/val subfolders: pass {root}/train (or /val) instead."
        raise DatasetError(f"{root}: no images found in label folders ({', '.join(labels)}).{hint}")
    return LabelledFiles(root, labels, paths, np.asarray(targets, dtype=np.int64), unknown, empty)


@dataclass
class FaceArrays:
    """Prepared faces (uint8, N x S x S) with their integer targets."""

    faces: np.ndarray
    targets: np.ndarray
    sources: list[Path]
    unreadable: list[Path] = field(default_factory=list)

    def subset(self, idx: np.ndarray) -> FaceArrays:
        return FaceArrays(self.faces[idx], self.targets[idx], [self.sources[i] for i in idx], self.unreadable)


def load_faces(files: LabelledFiles, size: int, indices: np.ndarray | None = None) -> FaceArrays:
    """Decode and prepare images; unreadable files are skipped and counted."""
    idx = np.arange(len(files.paths)) if indices is None else indices
    faces: list[np.ndarray] = []
    keep: list[int] = []
    unreadable: list[Path] = []
    for i in idx:
        # Decoded as BGR like a camera frame, so prepare_face does the grey conversion for both.
        image = cv2.imread(str(files.paths[i]), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            unreadable.append(files.paths[i])
            continue
        faces.append(prepare_face(image, size))
        keep.append(int(i))
    if unreadable:
        log.warning("%s: skipped %d unreadable image(s), e.g. %s", files.root, len(unreadable), unreadable[0])
    if not faces:
        raise DatasetError(f"{files.root}: none of the {len(idx)} images could be decoded.")
    return FaceArrays(
        faces=np.stack(faces),
        targets=files.targets[keep],
        sources=[files.paths[i] for i in keep],
        unreadable=unreadable,
    )


def content_groups(faces: np.ndarray) -> np.ndarray:
    """A group id per face; identical pixel arrays share one.

    FER-2013 holds the same picture under several file names (about 1,270 groups
    in the official training split), so splitting on file names alone would put
    copies of one image on both sides.
    """
    keys = np.array([hashlib.blake2b(face.tobytes(), digest_size=16).digest() for face in faces])
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


def split_validation(targets: np.ndarray, fraction: float, seed: int,
                     groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of source-file indices, whole groups to one side.

    Runs before any oversampling or augmentation, and keeps every member of a
    group (see ``content_groups``) on the same side, so no image, no copy of it
    and no identical picture under another name lands on both sides.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(targets))
    groups = indices if groups is None else np.asarray(groups)
    group_ids, first = np.unique(groups, return_index=True)
    _, val_groups = train_test_split(group_ids, test_size=fraction, random_state=seed, stratify=targets[first])
    in_val = np.isin(groups, val_groups)
    return indices[~in_val], indices[in_val]


def cap_per_class(targets: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Indices with exactly ``cap`` per class: undersample big classes, oversample
    small ones (every image as often as possible, the remainder drawn without
    replacement, so none is left out). Apply to training indices only."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(targets):
        members = np.flatnonzero(targets == cls)
        repeats, remainder = divmod(cap, len(members))
        chosen.append(np.concatenate([np.tile(members, repeats), rng.choice(members, size=remainder, replace=False)]))
    return np.sort(np.concatenate(chosen))
