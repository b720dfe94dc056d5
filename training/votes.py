"""FER+ crowd votes as training targets and as the selection label.

FER-2013 has one annotator per face, and on the classes this product alerts on
that annotator is often wrong: of the faces FER-2013 calls angry, the FER+
crowd's majority calls 1,447 neutral. FER+ (Barsoum et al., 2016) gave every
face ten votes over ``neutral, happiness, surprise, sadness, anger, disgust,
fear, contempt, unknown, NF``. A votes file is a CSV with those ten columns and
a ``file`` column naming the image relative to the CSV's own folder (e.g.
``train/angry/Training_10118481.jpg`` beside ``fer2013/ferplus.csv``).

How the ten columns become a target over the seven FER-2013 classes:

- **single votes are dropped** (FER+'s own outlier rule): one annotator in ten
  is as likely a slip as a signal, and keeping them teaches every calm face a
  little anger;
- **contempt** votes are dropped: FER-2013 has no contempt class, and folding it
  into disgust or anger would teach a one-sided smirk as one of them;
- **unknown** votes are dropped: an annotator who could not decide says nothing
  about which class it is;
- a face whose **not-a-face (NF)** votes are at least its top expression's is
  left out of training: it is more likely not a usable face than any expression;
- the rest are normalised into a distribution, so a face with 6 neutral and 4
  anger votes is taught as 0.6 neutral, 0.4 angry.

The **majority label** used for selection and evaluation is stricter, the
convention behind the 3,352 PublicTest faces in FER+ comparisons: the top of all
ten columns (single votes kept) must be one of the seven classes, and untied.
Faces without a row in the file (no confident match) have no votes and are
left out of vote-based training and evaluation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The ten FER+ columns, in the file's order.
VOTE_COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                 "contempt", "unknown", "NF")
#: FER+ column -> FER-2013 label; the columns not named here carry no expression.
TO_FER2013: dict[str, str] = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                              "anger": "angry", "disgust": "disgust", "fear": "fear"}


class VotesError(ValueError):
    """The votes file cannot be used; the message names it and says why."""


def vote_distribution(counts: np.ndarray, labels: tuple[str, ...]) -> np.ndarray | None:
    """The training target over ``labels`` from ten vote counts, or None for a face left out (see module doc)."""
    counts = np.asarray(counts, dtype=np.float64)
    kept = np.where(counts > 1, counts, 0.0)
    expression = np.array([kept[VOTE_COLUMNS.index(c)] for c in _columns_for(labels)])
    top = expression.max()
    if top == 0 or kept[VOTE_COLUMNS.index("NF")] >= top:
        return None
    return (expression / expression.sum()).astype(np.float32)


def majority_label(counts: np.ndarray, labels: tuple[str, ...]) -> int | None:
    """Index into ``labels`` of the untied top of all ten columns, or None when that top is tied or no expression."""
    counts = np.asarray(counts)
    top = counts.max()
    winners = np.flatnonzero(counts == top)
    if top == 0 or len(winners) != 1:
        return None
    column = VOTE_COLUMNS[int(winners[0])]
    return labels.index(TO_FER2013[column]) if column in TO_FER2013 else None


def _columns_for(labels: tuple[str, ...]) -> list[str]:
    by_label = {v: k for k, v in TO_FER2013.items()}
    missing = [label for label in labels if label not in by_label]
    if missing:
        raise VotesError(f"FER+ votes have no column for the label(s) {missing}; they cover {sorted(by_label)}")
    return [by_label[label] for label in labels]


@dataclass(frozen=True)
class VoteTable:
    """Ten vote counts per image, keyed by the image's resolved path."""

    path: Path
    counts: dict[Path, np.ndarray]

    @classmethod
    def read(cls, path: str | Path) -> VoteTable:
        path = Path(path)
        if not path.is_file():
            raise VotesError(f"{path}: votes file not found. Pass the FER+ votes CSV (e.g. ../shared/data/fer2013/ferplus.csv).")
        root = path.resolve().parent
        counts: dict[Path, np.ndarray] = {}
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("file", *VOTE_COLUMNS) if c not in (reader.fieldnames or [])]
            if missing:
                raise VotesError(f"{path}: missing column(s) {missing}; a votes file has 'file' and {list(VOTE_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                try:
                    votes = np.array([int(row[c]) for c in VOTE_COLUMNS], dtype=np.int64)
                except (TypeError, ValueError):
                    raise VotesError(f"{path}:{line}: vote counts must be whole numbers, got "
                                     f"{[row[c] for c in VOTE_COLUMNS]}") from None
                if (votes < 0).any():
                    raise VotesError(f"{path}:{line}: negative vote count")
                counts[(root / row["file"]).resolve()] = votes
        if not counts:
            raise VotesError(f"{path}: no rows")
        return cls(path, counts)

    def lookup(self, sources: list[Path]) -> list[np.ndarray | None]:
        """The counts of each source image, None where the file has no row."""
        return [self.counts.get(Path(s).resolve()) for s in sources]

    def distributions(self, sources: list[Path], labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the sources with a training target, their targets ``(n, len(labels))``)."""
        keep, rows = [], []
        for i, counts in enumerate(self.lookup(sources)):
            target = None if counts is None else vote_distribution(counts, labels)
            if target is not None:
                keep.append(i)
                rows.append(target)
        if not keep:
            raise VotesError(f"{self.path}: none of the {len(sources)} training images has usable votes; "
                             "does the file's 'file' column name them relative to the CSV's folder?")
        return np.asarray(keep, dtype=np.int64), np.stack(rows)

    def majority_labels(self, sources: list[Path], labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the sources with an untied majority label, those labels)."""
        keep, out = [], []
        for i, counts in enumerate(self.lookup(sources)):
            label = None if counts is None else majority_label(counts, labels)
            if label is not None:
                keep.append(i)
                out.append(label)
        return np.asarray(keep, dtype=np.int64), np.asarray(out, dtype=np.int64)
