"""Find faces in images and videos and print each face's most likely expressions.

Faces are found with YuNet (--detector-model, by default the shared data's
model as the demo uses it), with OpenCV's bundled Haar cascade when there is
none, then cropped, gated, preprocessed and
classified by the camera pipeline the daemon runs. An image is a one-frame
camera: each face is printed with its box. A video (told by its suffix: .mp4,
.mov, .avi, .mkv, .webm, ...) is a camera fed every frame by the video's own
clock, with the default alert rules: each tracked face is printed with when it
was classified and its probabilities averaged over those frames, then the
alerts the rules raised (replay --config runs a camera's own rules). A face
the quality gate holds back is printed with the reason and not classified. An
unreadable file is reported and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer_stream.alerts.config import AlertRules
from fer_stream.config.models import (
    CameraConfig,
    CameraSettings,
    DetectorSettings,
    FaceQualitySettings,
    TrackingSettings,
)
from fer_stream.faces import DetectorError, IouTracker, create_detector, draw_annotations
from fer_stream.faces.detector import FaceDetector
from fer_stream.faces.quality import QualityProblem
from fer_stream.model_card import ModelCardError
from fer_stream.pipeline import FacePipeline, build_pipeline
from fer_stream.replay.video import Observation, Trace, VideoError, replay_video, video_fps
from fer_stream.resources import SHARED_ENV, YUNET_FILE, shared_dir

if TYPE_CHECKING:
    from fer_stream.inference.engine import Classifier

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"})

#: (label, probability) for every class, most likely first.
Emotions = list[tuple[str, float]]


@dataclass(frozen=True)
class FacePrediction:
    box: tuple[int, int, int, int]
    emotions: Emotions  # empty when not classified
    problem: QualityProblem | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackPrediction:
    """One face tracked through a video: when it was classified, and its probabilities averaged over those frames."""

    track_id: int
    first_s: float
    last_s: float
    frames: int
    emotions: Emotions


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageResult:
    name: str
    faces: list[FacePrediction]
    annotated: Path | None

    @property
    def finite(self) -> bool:
        return all(np.isfinite(prob) for face in self.faces for _, prob in face.emotions)

    def lines(self, detector: str, top: int) -> list[str]:
        lines = [f"{self.name}: {_faces(len(self.faces))} ({detector})"]
        for number, face in enumerate(self.faces, 1):
            x, y, w, h = face.box
            shown = _ranking(face.emotions[:top]) or f"not classified ({face.problem})"
            lines.append(f"  face {number}: box x={x} y={y} w={w} h={h}: {shown}")
        return lines + ([f"  annotated: {self.annotated}"] if self.annotated else [])

    def as_json(self, top: int) -> dict:
        faces = [
            {"box": dict(zip("xywh", face.box, strict=True)), "emotions": _emotions_json(face.emotions[:top]),
             "not_classified": face.problem.value if face.problem else None}
            for face in self.faces
        ]  # fmt: skip
        return {"file": self.name, "kind": "image", "faces": faces, "annotated": _path_json(self.annotated)}


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoResult:
    name: str
    fps: float
    trace: Trace
    tracks: list[TrackPrediction]
    annotated: Path | None

    @property
    def finite(self) -> bool:
        return all(np.isfinite(prob) for track in self.tracks for _, prob in track.emotions)

    def lines(self, detector: str, top: int) -> list[str]:
        trace = self.trace
        gated = ", ".join(f"{n} {reason}" for reason, n in sorted(trace.gated.items()))
        lines = [
            f"{self.name}: {_faces(len(self.tracks))} ({detector}), {trace.duration_s:.1f} s, {trace.frames} frames "
            f"at {self.fps:.4g} fps" + (f"; not classified: {gated}" if gated else "")
        ]
        lines += [
            f"  track {track.track_id}: {track.first_s:.2f}-{track.last_s:.2f} s, {track.frames} frames: {_ranking(track.emotions[:top])}"
            for track in self.tracks
        ]
        lines += [f"  alert {timed.line()}" for timed in trace.alerts]
        return lines + ([f"  annotated: {self.annotated}"] if self.annotated else [])

    def as_json(self, top: int) -> dict:
        trace = self.trace
        tracks = [
            {"track_id": track.track_id, "first_s": round(track.first_s, 3), "last_s": round(track.last_s, 3),
             "frames": track.frames, "emotions": _emotions_json(track.emotions[:top])}
            for track in self.tracks
        ]  # fmt: skip
        return {
            "file": self.name,
            "kind": "video",
            "duration_s": round(trace.duration_s, 3),
            "frames": trace.frames,
            "fps": round(self.fps, 3),
            "faces_gated": dict(trace.gated),
            "tracks": tracks,
            "alerts": [timed.as_json() for timed in trace.alerts],
            "annotated": _path_json(self.annotated),
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="images (jpg, png, ...) or videos (mp4, mov, avi, mkv, webm, ...)")
    parser.add_argument("--model", type=Path, help="exported .tflite/.keras with its card (default: the shipped model)")
    parser.add_argument("--backend", choices=("auto", "litert", "tensorflow"), default="auto")
    parser.add_argument("--detector-model", type=Path, help="YuNet ONNX file (default: models/face_detection_yunet.onnx "
                        "in the shared data, $FER_STREAM_SHARED or ../shared; the Haar cascade when it is not there)")
    parser.add_argument("--min-face-size", type=int, default=DetectorSettings.model_fields["min_face_size"].default)
    parser.add_argument(
        "--annotate-dir", type=Path, help="write an annotated copy of each file here (NAME.annotated.png; NAME.annotated.mp4 for a video)"
    )
    parser.add_argument("--top", type=int, default=3, metavar="K", help="expressions printed per face (default 3)")
    parser.add_argument("--no-quality-gate", action="store_true", help="classify every face, however small or blurred")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of text")


def predict_faces(image: np.ndarray, detector: FaceDetector, classifier: Classifier, quality: FaceQualitySettings) -> list[FacePrediction]:
    """Every face in ``image``, through the camera pipeline as a one-frame camera."""
    pipeline = FacePipeline(detector=detector, tracker=IouTracker(min_hits=1), rules=None, labels=classifier.labels,
                            input_size=classifier.input_size, quality=quality)  # fmt: skip
    faces = pipeline.faces(image, 0.0)
    probabilities, _ = pipeline.classify(faces, classifier.predict)
    by_track = dict(zip((crop.track_id for crop in faces.crops), probabilities, strict=True))
    results = []
    for track_id, face in sorted(pipeline.tracks.items()):
        probs = by_track.get(track_id)
        results.append(FacePrediction(face.box, [] if probs is None else _ranked(probs, classifier.labels), face.problem))
    return results


def predict_image(
    name: str, image: np.ndarray, detector: FaceDetector, classifier: Classifier, quality: FaceQualitySettings, annotate_dir: Path | None
) -> ImageResult:
    """One image's faces; its annotated copy is written when ``annotate_dir`` is given."""
    faces = predict_faces(image, detector, classifier, quality)
    target = None
    if annotate_dir:
        shown = [(f.box, f.emotions[0][0], f.emotions[0][1]) if f.emotions else (f.box, None, 0.0) for f in faces]
        target = annotate_dir / f"{Path(name).stem}.annotated.png"
        cv2.imwrite(str(target), draw_annotations(image, shown))
    return ImageResult(name=name, faces=faces, annotated=target)


def predict_video(video: Path, settings: CameraSettings, classifier: Classifier, annotate_dir: Path | None) -> VideoResult:
    """Every frame of ``video`` through a camera pipeline built from ``settings``; an annotated copy when asked."""
    fps = video_fps(video)
    pipeline = build_pipeline(settings, labels=classifier.labels, input_size=classifier.input_size,
                              model_id=classifier.card.model_id, model_version=classifier.card.version, host="predict")  # fmt: skip
    target = annotate_dir / f"{video.stem}.annotated.mp4" if annotate_dir else None
    writer = AnnotatedVideo(target, fps, pipeline) if target else None
    try:
        trace = replay_video(video, pipeline, classifier.predict, fps=fps, on_frame=writer)
    finally:
        if writer:
            writer.close()
    return VideoResult(name=str(video), fps=fps, trace=trace, tracks=track_predictions(trace, classifier.labels), annotated=target)


def track_predictions(trace: Trace, labels: Sequence[str]) -> list[TrackPrediction]:
    """Each face of a video that was classified at least once, in track order."""
    seen: dict[int, list[Observation]] = {}
    for event in trace.events:
        if isinstance(event, Observation):
            seen.setdefault(event.track_id, []).append(event)
    return [
        TrackPrediction(track_id=track_id, first_s=observations[0].t, last_s=observations[-1].t, frames=len(observations),
                        emotions=_ranked(np.mean([o.probabilities for o in observations], axis=0), labels))
        for track_id, observations in sorted(seen.items())
    ]  # fmt: skip


class AnnotatedVideo:
    """``replay_video``'s frame hook: writes every frame with the pipeline's faces drawn as the live view draws them.

    mp4v at the source's fps; the size is taken from the first decoded frame, which is what the decoder delivers.
    """

    def __init__(self, path: Path, fps: float, pipeline: FacePipeline) -> None:
        self.path = path
        self.fps = fps
        self.pipeline = pipeline
        self._writer: cv2.VideoWriter | None = None

    def __call__(self, t: float, frame: np.ndarray) -> None:
        if self._writer is None:
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise VideoError(f"{self.path}: OpenCV cannot write an mp4v video here")
        views = self.pipeline.views()
        faces = [(v.box, v.emotion, v.score, v.track_id, v.alerting) for v in views]
        self._writer.write(draw_annotations(frame, faces, alerting=any(v.alerting for v in views)))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def run(args: argparse.Namespace) -> int:
    from fer_stream.inference.engine import load_classifier  # imported late: loading TF/LiteRT is slow

    if args.top < 1:
        print("--top must be at least 1", file=sys.stderr)
        return 2
    yunet = args.detector_model or default_yunet()
    detector_settings = DetectorSettings(
        backend="yunet" if yunet else "haar",
        model_path=yunet.resolve() if yunet else None,
        min_face_size=args.min_face_size,
        detect_width=None,
    )
    quality = FaceQualitySettings(enabled=not args.no_quality_gate)
    video_settings = CameraSettings(camera=CameraConfig(name="predict", source=0), detector=detector_settings,
                                    tracking=TrackingSettings(), face_quality=quality, alert_rules=AlertRules())  # fmt: skip
    if yunet is None:
        print(f"no YuNet model at {shared_dir() / 'models' / YUNET_FILE}: faces are found with the Haar cascade (slower, "
              f"and it splits faces into more tracks); pass --detector-model FILE or set {SHARED_ENV}=/path/to/shared",
              file=sys.stderr)  # fmt: skip
    try:
        with _quiet(logging.getLogger("fer_stream.faces.detector")):  # its hint names a config key predict does not take
            detector = create_detector(detector_settings)
        classifier = load_classifier(args.model, backend=args.backend)
    except (DetectorError, ModelCardError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.annotate_dir:
        args.annotate_dir.mkdir(parents=True, exist_ok=True)

    documents = []
    failures = 0
    for name in args.files:
        result: ImageResult | VideoResult
        if Path(name).suffix.lower() in VIDEO_SUFFIXES:
            try:
                result = predict_video(Path(name), video_settings, classifier, args.annotate_dir)
            except VideoError as exc:
                print(f"{exc}; skipped", file=sys.stderr)
                failures += 1
                continue
        else:
            image = cv2.imread(name, cv2.IMREAD_COLOR)
            if image is None:
                print(f"{name}: cannot read this image (missing, unreadable or not an image format OpenCV knows); skipped", file=sys.stderr)
                failures += 1
                continue
            result = predict_image(name, image, detector, classifier, quality, args.annotate_dir)
        if not result.finite:
            print(f"error: {classifier.model_path} returned non-finite probabilities: the model file is broken; "
                  "re-train or re-export it", file=sys.stderr)  # fmt: skip
            return 2
        if args.json:
            documents.append(result.as_json(args.top))
        else:
            print("\n".join(result.lines(detector.name, args.top)), flush=True)
    if args.json:
        print(json.dumps({"detector": detector.name, "files": documents}, indent=2))
    return 1 if failures else 0


def default_yunet() -> Path | None:
    """The shared data's YuNet model, as the demo uses it; None when it is not there."""
    path = shared_dir() / "models" / YUNET_FILE
    return path if path.is_file() else None


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _ranked(probabilities: np.ndarray, labels: Sequence[str]) -> Emotions:
    return [(labels[i], float(probabilities[i])) for i in np.argsort(probabilities)[::-1]]


def _faces(count: int) -> str:
    return f"{count} face{'s' if count != 1 else ''}"


def _ranking(emotions: Emotions) -> str:
    return ", ".join(f"{label} {prob:.2f}" for label, prob in emotions)


def _emotions_json(emotions: Emotions) -> list[dict]:
    return [{"emotion": label, "score": round(prob, 4)} for label, prob in emotions]


def _path_json(path: Path | None) -> str | None:
    return None if path is None else str(path)
