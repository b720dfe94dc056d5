"""Face detection: YuNet (an ONNX model for cv2.FaceDetectorYN) or OpenCV's bundled Haar cascade.

YuNet is far more accurate (profiles, small and dim faces); the Haar cascade
ships inside OpenCV 4 and needs no file, so it is the offline fallback. Both
detect on a frame downscaled to ``detect_width`` (detection cost grows with
pixels, faces stay findable) and return boxes in full-frame coordinates.

Between full-frame scans a camera looks for the faces it already tracks only
around where they should be (:meth:`YuNetDetector.detect_around`): a square
window of ``WINDOW_SPAN`` face sides around each expected box, scaled to
``WINDOW_SIZE`` pixels, so the face comes out near 64 px, where YuNet is at its
best, at a few percent of a full frame's pixels. Detections from overlapping
windows are merged by non-maximum suppression (``cv2.dnn.NMSBoxes``).

A YuNet model comes from ``model_path`` or is downloaded once from
``model_url`` into ``cache_dir``; its sha256 is checked either way when given.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np

from fer_stream.config.models import DetectorSettings
from fer_stream.redaction import redact_url

log = logging.getLogger(__name__)

HAAR_FILE = "haarcascade_frontalface_default.xml"
DOWNLOAD_TIMEOUT_S = 60
#: A window around an expected face is this many face sides wide (the face may move by 0.75 of its size either way).
WINDOW_SPAN = 2.5
#: Pixels a side a window is scaled to: its face comes out at WINDOW_SIZE / WINDOW_SPAN = 64 px.
WINDOW_SIZE = 160


class DetectorError(RuntimeError):
    """The configured detector cannot be built; the message names the file or URL and the fix."""


@dataclass(frozen=True, slots=True)
class Detection:
    """A face in full-frame pixel coordinates. ``landmarks``: eyes, nose tip, mouth corners (YuNet only)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None


class FaceDetector(Protocol):
    name: str

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]: ...

    def detect_around(self, frame_bgr: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[Detection]: ...


def _windows(frame: np.ndarray, boxes: list[tuple[int, int, int, int]]):
    """For each expected face box: its window as a WINDOW_SIZE square image, the factor back to frame pixels, its origin.

    A window reaching past the frame is cut at its edge and padded with black, so one factor maps all of it back.
    """
    frame_h, frame_w = frame.shape[:2]
    for x, y, w, h in boxes:
        side = max(w, h) * WINDOW_SPAN
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(frame_w, int(cx + side / 2)), min(frame_h, int(cy + side / 2))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        scale = WINDOW_SIZE / side
        size = (min(WINDOW_SIZE, max(1, round((x1 - x0) * scale))), min(WINDOW_SIZE, max(1, round((y1 - y0) * scale))))
        small = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        square = cv2.copyMakeBorder(small, 0, WINDOW_SIZE - size[1], 0, WINDOW_SIZE - size[0], cv2.BORDER_CONSTANT, value=0)
        yield square, (x1 - x0) / size[0], (y1 - y0) / size[1], x0, y0


def _merged(detections: list[Detection], nms_threshold: float) -> list[Detection]:
    """One detection per face when windows overlap: the best-scoring of each overlapping group."""
    if len(detections) < 2:
        return detections
    keep = cv2.dnn.NMSBoxes([list(d.box) for d in detections], [d.score for d in detections], 0.0, nms_threshold)
    return [detections[int(i)] for i in np.asarray(keep).reshape(-1)]


def _scale_for(frame: np.ndarray, detect_width: int | None) -> tuple[np.ndarray, float]:
    """The frame to run detection on, and the factor from its coordinates back to the full frame."""
    height, width = frame.shape[:2]
    if detect_width is None or width <= detect_width:
        return frame, 1.0
    small = cv2.resize(frame, (detect_width, round(height * detect_width / width)), interpolation=cv2.INTER_AREA)
    return small, width / detect_width


def _clip_box(x: float, y: float, w: float, h: float, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(frame_w, int(round(x + w))), min(frame_h, int(round(y + h)))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


class YuNetDetector:
    """cv2.FaceDetectorYN; the input size follows each frame's (downscaled) size."""

    name = "yunet"

    def __init__(self, model_path: Path, settings: DetectorSettings):
        self.settings = settings
        self.model_path = model_path
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(model_path), "", (320, 320), settings.score_threshold, settings.nms_threshold, 5000
            )
        except cv2.error as exc:
            raise DetectorError(
                f"{model_path}: OpenCV cannot load it as a YuNet face detector ({exc.err or exc}); "
                "use face_detection_yunet_2023mar.onnx from the OpenCV model zoo, or set detector.backend: haar"
            ) from None
        self._input_size: tuple[int, int] | None = None
        # Windows get a net of their own, so switching between them and full frames never resizes a net.
        self._window_net: cv2.FaceDetectorYN | None = None

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        frame_h, frame_w = frame_bgr.shape[:2]
        small, scale = _scale_for(frame_bgr, self.settings.detect_width)
        size = (small.shape[1], small.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, faces = self._net.detect(small)
        return self._detections(faces, scale, scale, 0, 0, frame_w, frame_h)

    def detect_around(self, frame_bgr: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[Detection]:
        """Faces in a window around each of ``boxes`` (where tracked faces should be), merged across windows."""
        if self._window_net is None:
            self._window_net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (WINDOW_SIZE, WINDOW_SIZE), self.settings.score_threshold,
                self.settings.nms_threshold, 5000,
            )
        frame_h, frame_w = frame_bgr.shape[:2]
        detections: list[Detection] = []
        for window, scale_x, scale_y, x0, y0 in _windows(frame_bgr, boxes):
            _, faces = self._window_net.detect(window)
            detections += self._detections(faces, scale_x, scale_y, x0, y0, frame_w, frame_h)
        return _merged(detections, self.settings.nms_threshold)

    def _detections(self, faces, scale_x: float, scale_y: float, x0: int, y0: int, frame_w: int, frame_h: int) -> list[Detection]:
        """YuNet's rows (box, five landmarks, score) in full-frame pixels, faces under min_face_size left out."""
        detections = []
        for row in faces if faces is not None else ():
            x, y, w, h = float(row[0]) * scale_x + x0, float(row[1]) * scale_y + y0, float(row[2]) * scale_x, float(row[3]) * scale_y
            box = _clip_box(x, y, w, h, frame_w, frame_h)
            if min(box[2], box[3]) < self.settings.min_face_size:
                continue
            points = tuple((float(px * scale_x + x0), float(py * scale_y + y0)) for px, py in row[4:14].reshape(5, 2))
            detections.append(Detection(box, float(row[14]), points))
        return detections


class HaarDetector:
    """OpenCV's bundled frontal-face cascade. It has no confidence: every face it returns scores 1.0."""

    name = "haar"

    def __init__(self, settings: DetectorSettings):
        self.settings = settings
        path = Path(cv2.data.haarcascades) / HAAR_FILE  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"{path}: OpenCV's bundled Haar cascade is missing; reinstall opencv-python-headless 4.x")

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        small, scale = _scale_for(frame_bgr, self.settings.detect_width)
        return self._detections(small, scale, scale, 0, 0, frame_bgr.shape[1], frame_bgr.shape[0])

    def detect_around(self, frame_bgr: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[Detection]:
        """Faces in a window around each of ``boxes`` (where tracked faces should be), merged across windows."""
        frame_h, frame_w = frame_bgr.shape[:2]
        detections: list[Detection] = []
        for window, scale_x, scale_y, x0, y0 in _windows(frame_bgr, boxes):
            detections += self._detections(window, scale_x, scale_y, x0, y0, frame_w, frame_h)
        return _merged(detections, self.settings.nms_threshold)

    def _detections(self, image: np.ndarray, scale_x: float, scale_y: float, x0: int, y0: int, frame_w: int,
                    frame_h: int) -> list[Detection]:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        grey = cv2.equalizeHist(grey)
        min_side = max(1, int(self.settings.min_face_size / max(scale_x, scale_y)))
        boxes = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        return [
            Detection(_clip_box(float(x) * scale_x + x0, float(y) * scale_y + y0, float(w) * scale_x, float(h) * scale_y,
                                frame_w, frame_h), 1.0)
            for x, y, w, h in boxes
        ]


def create_detector(settings: DetectorSettings) -> FaceDetector:
    """The detector the settings ask for (``auto``: YuNet when a model is configured, else Haar)."""
    wants_yunet = settings.backend == "yunet" or (
        settings.backend == "auto" and (settings.model_path or settings.model_url)
    )
    if not wants_yunet:
        log.info("face detector: OpenCV Haar cascade (%s); configure detector.model_path for YuNet", HAAR_FILE)
        return HaarDetector(settings)
    path = yunet_model_file(settings)
    log.info("face detector: YuNet %s", path)
    return YuNetDetector(path, settings)


def yunet_model_file(settings: DetectorSettings) -> Path:
    """The verified local YuNet file: the configured path, or the cached download (fetched once)."""
    if settings.model_path is not None:
        path = settings.model_path
        if not path.is_file():
            raise DetectorError(f"detector.model_path {path}: no such file; fix the path or use detector.backend: haar")
        if settings.model_sha256:
            _check_sha256(path, settings.model_sha256, "detector.model_sha256")
        return path
    assert settings.model_url and settings.model_sha256  # guaranteed by DetectorSettings' validator
    name = Path(urlsplit(settings.model_url).path).name or "face_detector.onnx"
    cached = settings.cache_dir / f"{settings.model_sha256[:12]}-{name}"
    if cached.is_file():
        _check_sha256(cached, settings.model_sha256, f"cached download {cached} (delete it to fetch again)")
        return cached
    _download(settings.model_url, cached, settings.model_sha256)
    return cached


def _download(url: str, target: Path, sha256: str) -> None:
    shown = redact_url(url)
    log.info("downloading the face detector from %s to %s", shown, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 16):
                out.write(chunk)
        _check_sha256(Path(partial), sha256, f"download from {shown}")
        os.replace(partial, target)
    except OSError as exc:
        raise DetectorError(
            f"detector.model_url {shown}: download failed ({exc}); check the URL and network, "
            "or download the file yourself and set detector.model_path"
        ) from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _check_sha256(path: Path, expected: str, what: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected.lower():
        raise DetectorError(
            f"{what}: sha256 of {path} is {digest}, expected {expected}; the file is not the configured model "
            "(replace it, or correct detector.model_sha256)"
        )
