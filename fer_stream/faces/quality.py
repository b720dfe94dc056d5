"""Which detected faces are good enough to classify: size, sharpness and head pose.

The classifier was trained on frontal, sharp FER-2013 faces. A face a few
pixels wide, smeared by motion or turned to a profile gives it nothing to read,
and its answer is noise that the alert rules would otherwise average in. Such
faces are tracked and drawn but not classified, so they cannot drive an alert.

- size: the shorter side of the detector's box, in full-frame pixels;
- sharpness: the variance of the Laplacian of the prepared (model-sized) grey
  face, so it does not depend on how large the face was in the frame;
- yaw: how far the nose tip sits from the midpoint of the eyes, as a share of
  the distance between the eyes (0 frontal, about 0.5 at a half profile); it
  needs the detector's landmarks (YuNet), and is skipped without them (Haar).
"""

from __future__ import annotations

from enum import StrEnum

import cv2
import numpy as np

from fer_stream.config.models import FaceQualitySettings


class QualityProblem(StrEnum):
    SMALL = "small"
    BLURRED = "blurred"
    TURNED = "turned"


def sharpness(face: np.ndarray) -> float:
    """Variance of the Laplacian of a prepared (uint8 grey) face."""
    return float(cv2.Laplacian(face, cv2.CV_32F).var())


def yaw_ratio(landmarks: tuple[tuple[float, float], ...] | None) -> float | None:
    """|nose x - eye midpoint x| / eye distance from YuNet's five points (right eye, left eye, nose, ...)."""
    if landmarks is None or len(landmarks) < 3:
        return None
    (rx, ry), (lx, ly), (nx, _) = landmarks[:3]
    eye_distance = float(np.hypot(lx - rx, ly - ry))
    if eye_distance <= 1e-6:
        return None
    return abs(nx - (rx + lx) / 2.0) / eye_distance


def quality_problem(
    settings: FaceQualitySettings,
    box: tuple[int, int, int, int],
    face: np.ndarray,
    landmarks: tuple[tuple[float, float], ...] | None,
) -> QualityProblem | None:
    """Why this face should not be classified, or None when it may be."""
    if not settings.enabled:
        return None
    if min(box[2], box[3]) < settings.min_face_px:
        return QualityProblem.SMALL
    yaw = yaw_ratio(landmarks)
    if yaw is not None and yaw > settings.max_yaw:
        return QualityProblem.TURNED
    if sharpness(face) < settings.min_sharpness:
        return QualityProblem.BLURRED
    return None
