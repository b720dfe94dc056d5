"""Find faces in images and print each face's box and most likely expressions.

Faces are found with YuNet when an ONNX file is given (--detector-model), with
OpenCV's bundled Haar cascade otherwise, then cropped, gated, preprocessed and
classified by the camera pipeline the daemon runs (each image a one-frame
camera). A face the quality gate holds back is printed with the reason and not
classified. An unreadable image is reported and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_stream.config.models import DetectorSettings, FaceQualitySettings
from fer_stream.faces import DetectorError, IouTracker, create_detector, draw_annotations
from fer_stream.faces.detector import FaceDetector
from fer_stream.faces.quality import QualityProblem
from fer_stream.model_card import ModelCardError
from fer_stream.pipeline import FacePipeline


@dataclass(frozen=True)
class FacePrediction:
    box: tuple[int, int, int, int]
    emotions: list[tuple[str, float]]  # all classes, most likely first; empty when not classified
    problem: QualityProblem | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (jpg, png, ...)")
    parser.add_argument("--model", type=Path, help="exported .tflite/.keras with its card (default: the shipped model)")
    parser.add_argument("--backend", choices=("auto", "litert", "tensorflow"), default="auto")
    parser.add_argument("--detector-model", type=Path, help="YuNet ONNX file; without it the Haar cascade is used")
    parser.add_argument("--min-face-size", type=int, default=DetectorSettings.model_fields["min_face_size"].default)
    parser.add_argument("--annotate-dir", type=Path, help="write an annotated copy of each image here")
    parser.add_argument("--top", type=int, default=3, metavar="K", help="expressions printed per face (default 3)")
    parser.add_argument("--no-quality-gate", action="store_true", help="classify every face, however small or blurred")


def predict_faces(image: np.ndarray, detector: FaceDetector, classifier, quality: FaceQualitySettings) -> list[FacePrediction]:
    """Every face in ``image``, through the camera pipeline as a one-frame camera."""
    pipeline = FacePipeline(detector=detector, tracker=IouTracker(min_hits=1), rules=None, labels=classifier.labels,
                            input_size=classifier.input_size, quality=quality)  # fmt: skip
    faces = pipeline.faces(image, 0.0)
    probabilities, _ = pipeline.classify(faces, classifier.predict)
    by_track = dict(zip((crop.track_id for crop in faces.crops), probabilities, strict=True))
    results = []
    for track_id, face in sorted(pipeline.tracks.items()):
        probs = by_track.get(track_id)
        emotions = [] if probs is None else [(classifier.labels[i], float(probs[i])) for i in np.argsort(probs)[::-1]]
        results.append(FacePrediction(face.box, emotions, face.problem))
    return results


def run(args: argparse.Namespace) -> int:
    from fer_stream.inference.engine import load_classifier  # imported late: loading TF/LiteRT is slow

    if args.top < 1:
        print("--top must be at least 1", file=sys.stderr)
        return 2
    try:
        detector = create_detector(
            DetectorSettings(
                backend="yunet" if args.detector_model else "haar",
                model_path=args.detector_model.resolve() if args.detector_model else None,
                min_face_size=args.min_face_size,
                detect_width=None,
            )
        )
        classifier = load_classifier(args.model, backend=args.backend)
    except (DetectorError, ModelCardError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.annotate_dir:
        args.annotate_dir.mkdir(parents=True, exist_ok=True)

    failures = 0
    for name in args.images:
        image = cv2.imread(name, cv2.IMREAD_COLOR)
        if image is None:
            print(f"{name}: cannot read this image (missing, unreadable or not an image format OpenCV knows); skipped", file=sys.stderr)
            failures += 1
            continue
        faces = predict_faces(image, detector, classifier, FaceQualitySettings(enabled=not args.no_quality_gate))
        if any(not np.isfinite(prob) for face in faces for _, prob in face.emotions):
            print(f"error: {classifier.model_path} returned non-finite probabilities: the model file is broken; "
                  "re-train or re-export it", file=sys.stderr)  # fmt: skip
            return 2
        print(f"{name}: {len(faces)} face{'s' if len(faces) != 1 else ''} ({detector.name})")
        for number, face in enumerate(faces, 1):
            top = ", ".join(f"{label} {prob:.2f}" for label, prob in face.emotions[: args.top])
            x, y, w, h = face.box
            print(f"  face {number}: box x={x} y={y} w={w} h={h}: {top or f'not classified ({face.problem})'}")
        if args.annotate_dir:
            shown = [(f.box, f.emotions[0][0], f.emotions[0][1]) if f.emotions else (f.box, None, 0.0) for f in faces]
            annotated = draw_annotations(image, shown)
            target = args.annotate_dir / f"{Path(name).stem}.annotated.png"
            cv2.imwrite(str(target), annotated)
            print(f"  annotated: {target}")
    return 1 if failures else 0
