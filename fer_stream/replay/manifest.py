"""The labelled-footage manifest ``calibrate`` reads: a CSV, one row per clip or per labelled time segment.

Columns (a header row is required; other columns are ignored, so a manifest
may carry notes such as ``person`` or ``source``):

- ``file``: the video, relative to the manifest's directory or absolute;
- ``label``: what the person shows there, one of the model's labels
  (``angry``, ``fear``, ... ); an emotion the rules watch makes the row a
  *target* that should alert, any other label footage that should not;
- ``start_s``, ``end_s`` (optional, seconds of video): the row covers only
  this segment; empty or absent means the whole file. A file may have several
  rows with segments that do not overlap; footage outside every segment of a
  file is not scored.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("file", "label")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the row and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One labelled stretch of a video (``end_s`` None: to the end of the file)."""

    row: int
    video: Path
    label: str
    start_s: float = 0.0
    end_s: float | None = None

    def covers(self, t: float) -> bool:
        return t >= self.start_s and (self.end_s is None or t < self.end_s)

    def length(self, duration_s: float) -> float:
        end = duration_s if self.end_s is None else min(self.end_s, duration_s)
        return max(end - self.start_s, 0.0)


def _time(value: str | None, column: str, where: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ManifestError(f"{where}: {column} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ManifestError(f"{where}: {column} {value!r} must be a finite number of seconds, 0 or more")
    return seconds


def load_manifest(path: Path, labels: list[str]) -> list[Segment]:
    """Every row of the manifest, checked: the files exist, the labels are the model's, the times make sense."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ManifestError(
            f"{path}: the header row lacks {', '.join(missing)}; expected at least file,label (optionally start_s,end_s)"
        )
    segments: list[Segment] = []
    for row_number, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        where = f"{path}, row {row_number}"
        if not row.get("file"):
            raise ManifestError(f"{where}: the file column is empty")
        video = Path(row["file"]).expanduser()
        video = video if video.is_absolute() else path.parent / video
        if not video.is_file():
            raise ManifestError(f"{where}: no such video file {video}; fix the path (relative paths start at {path.parent})")
        label = row.get("label", "").lower()
        if label not in labels:
            raise ManifestError(f"{where}: label {row.get('label')!r} is not one of the model's labels ({', '.join(labels)})")
        start = _time(row.get("start_s"), "start_s", where) or 0.0
        end = _time(row.get("end_s"), "end_s", where)
        if end is not None and end <= start:
            raise ManifestError(f"{where}: bad time range: end_s {end:g} is not after start_s {start:g}")
        segment = Segment(row=row_number, video=video, label=label, start_s=start, end_s=end)
        for other in segments:
            if other.video == video and _overlap(other, segment):
                raise ManifestError(f"{where}: its time range overlaps row {other.row} of the same file; split the footage once")
        segments.append(segment)
    if not segments:
        raise ManifestError(f"{path}: no rows; add one row per clip (file,label)")
    return segments


def _overlap(a: Segment, b: Segment) -> bool:
    a_end = math.inf if a.end_s is None else a.end_s
    b_end = math.inf if b.end_s is None else b.end_s
    return a.start_s < b_end and b.start_s < a_end
