"""Face detection: YuNet (an ONNX model for cv2.FaceDetectorYN) or OpenCV's bundled Haar cascade.

YuNet is far more accurate (profiles, small and dim faces); the Haar cascade
ships inside OpenCV 4 and needs no file, so it is the offline fallback. Both
detect on a frame downscaled to ``detect_width`` (detection cost grows with
pixels, faces stay findable) and return boxes in full-frame coordinates.

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

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        frame_h, frame_w = frame_bgr.shape[:2]
        small, scale = _scale_for(frame_bgr, self.settings.detect_width)
        size = (small.shape[1], small.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, faces = self._net.detect(small)
        detections = []
        for row in faces if faces is not None else ():
            x, y, w, h = (float(v) * scale for v in row[:4])
            box = _clip_box(x, y, w, h, frame_w, frame_h)
            if min(box[2], box[3]) < self.settings.min_face_size:
                continue
            points = tuple((float(px * scale), float(py * scale)) for px, py in row[4:14].reshape(5, 2))
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
        frame_h, frame_w = frame_bgr.shape[:2]
        small, scale = _scale_for(frame_bgr, self.settings.detect_width)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        grey = cv2.equalizeHist(grey)
        min_side = max(1, int(self.settings.min_face_size / scale))
        boxes = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        return [
            Detection(_clip_box(float(x) * scale, float(y) * scale, float(w) * scale, float(h) * scale, frame_w, frame_h), 1.0)
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
