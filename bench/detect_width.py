"""Face recall and detection cost against ``detector.detect_width``: what the default trades.

Every shared video (the demo clips and the labelled real-world clips) is sampled
at ``--fps`` and shown to YuNet, through the product's own detector, in two
scenes:

- ``as recorded``: the frame itself (these are close-ups, 256 to 596 px wide);
- ``wide view``: the frame shrunk so its face is ``--face-px`` pixels high and
  pasted into a 1920x1080 frame of its own blurred, enlarged copy, the way a
  face sits in a wide surveillance view.

The reference is detection at full resolution; a face counts as recalled at a
width when a detection there overlaps it with IoU >= 0.5. Only faces of at
least ``face_quality.min_face_px`` (the smallest the quality gate lets the
classifier see) are counted: smaller ones would not be classified anyway.

    .venv/bin/python bench/detect_width.py --out /tmp/detect_width.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fer_stream.config.models import DetectorSettings, FaceQualitySettings
from fer_stream.faces import create_detector
from fer_stream.faces.tracker import iou_matrix
from fer_stream.replay.video import sample_frames

REPO = Path(__file__).resolve().parents[1]
WIDTHS = (240, 320, 480, 640, 960, 1280)
WIDE = (1920, 1080)


def videos(shared: Path) -> list[Path]:
    return sorted((shared / "media").glob("*.mp4")) + sorted((shared / "data" / "realworld" / "clips").glob("*/*.mp4"))


def wide_view(frame: np.ndarray, face_h: int, face_px: int, rng: np.random.Generator) -> np.ndarray:
    """The frame shrunk so its face is ``face_px`` high, pasted at a random place in a 1920x1080 scene."""
    scale = face_px / face_h
    small = cv2.resize(frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    scene = cv2.GaussianBlur(cv2.resize(frame, WIDE, interpolation=cv2.INTER_LINEAR), (0, 0), 25)
    x = int(rng.integers(0, WIDE[0] - small.shape[1]))
    y = int(rng.integers(0, WIDE[1] - small.shape[0]))
    scene[y : y + small.shape[0], x : x + small.shape[1]] = small
    return scene


def measure(frames: list[np.ndarray], yunet: Path, min_face: int) -> dict:
    reference = create_detector(DetectorSettings(backend="yunet", model_path=yunet, detect_width=None, min_face_size=1))
    truth = [[d.box for d in reference.detect(f) if min(d.box[2], d.box[3]) >= min_face] for f in frames]
    faces = sum(len(t) for t in truth)
    rows = {}
    for width in WIDTHS:
        detector = create_detector(DetectorSettings(backend="yunet", model_path=yunet, detect_width=width, min_face_size=1))
        found, spent = 0, 0.0
        for frame, boxes in zip(frames, truth, strict=True):
            started = time.perf_counter()
            detections = detector.detect(frame)
            spent += time.perf_counter() - started
            if boxes and detections:
                ious = iou_matrix(boxes, [d.box for d in detections])
                found += int((ious.max(axis=1) >= 0.5).sum())
        rows[width] = {"recall": round(found / faces, 3) if faces else None, "ms_per_frame": round(1000 * spent / len(frames), 2)}
    return {"frames": len(frames), "faces": faces, "by_width": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("FER_STREAM_SHARED", REPO.parent / "shared")))
    parser.add_argument("--fps", type=float, default=2.0, help="frames a second sampled from each video")
    parser.add_argument("--face-px", type=int, default=48, help="face height in the wide view")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    yunet = args.shared / "models" / "face_detection_yunet.onnx"
    min_face = FaceQualitySettings().min_face_px
    probe = create_detector(DetectorSettings(backend="yunet", model_path=yunet, detect_width=None, min_face_size=1))
    rng = np.random.default_rng(0)
    recorded, wide = [], []
    for video in videos(args.shared):
        for _, frame in sample_frames(video, args.fps):
            recorded.append(frame)
            found = probe.detect(frame)
            if found:
                wide.append(wide_view(frame, max(d.box[3] for d in found), args.face_px, rng))
    results = {"cpu": os.cpu_count(), "fps": args.fps, "face_px": args.face_px, "min_face_px": min_face,
               "as_recorded": measure(recorded, yunet, min_face), "wide_view": measure(wide, yunet, min_face)}
    print("| detect_width | recall as recorded | ms/frame | recall, wide view (1920x1080, faces "
          f"{args.face_px} px) | ms/frame |\n| ---: | ---: | ---: | ---: | ---: |")
    for width in WIDTHS:
        a, b = results["as_recorded"]["by_width"][width], results["wide_view"]["by_width"][width]
        print(f"| {width} | {a['recall']} | {a['ms_per_frame']} | {b['recall']} | {b['ms_per_frame']} |")
    print(f"faces counted: {results['as_recorded']['faces']} as recorded, {results['wide_view']['faces']} in the wide view")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
