"""Cut a detected face out of a frame the way FER-2013 framed its faces.

FER-2013 faces are tight, roughly square crops from the forehead to the chin
with a little of the cheeks on both sides. Detector boxes (YuNet, Haar) are
about that tight already, so the crop is the box made square around its
centre plus a small margin. Squaring matters: ``prepare_face`` resizes to a
square, and a non-square crop would stretch the face.
"""

from __future__ import annotations

import numpy as np

#: Fraction of the box side added on each side.
DEFAULT_MARGIN = 0.1


def crop_face(frame_bgr: np.ndarray, box: tuple[int, int, int, int], margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A copy of the square region around ``box`` (x, y, w, h), clipped to the frame."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    frame_h, frame_w = frame_bgr.shape[:2]
    x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    x1, y1 = min(frame_w, int(round(cx + side / 2))), min(frame_h, int(round(cy + side / 2)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} lies outside the {frame_w}x{frame_h} frame")
    return frame_bgr[y0:y1, x0:x1].copy()
