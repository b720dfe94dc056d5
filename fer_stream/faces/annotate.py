"""Draw faces, their expressions and track ids on a copy of a frame (predict --annotate-dir, the live view, alert snapshots)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import cv2
import numpy as np

CALM_BGR = (80, 200, 80)
ALERT_BGR = (40, 40, 230)


class FaceAnnotation(NamedTuple):
    box: tuple[int, int, int, int]
    label: str | None
    score: float
    track_id: int | None = None
    alerting: bool = False


#: Hershey font scale per pixel of the frame's longer side: about 22 px of text on a 640-px frame.
FONT_SCALE_PER_PX = 1 / 640

#: A blurred face is pixelated to this many blocks across: nobody is recognisable, an expression barely.
BLUR_BLOCKS = 6


def blur_faces(frame_bgr: np.ndarray, boxes: Iterable[tuple[int, int, int, int]]) -> np.ndarray:
    """A copy with every box (padded by a fifth) pixelated: the console's privacy option for viewers."""
    out = frame_bgr.copy()
    height, width = out.shape[:2]
    for x, y, w, h in boxes:
        pad_x, pad_y = w // 5, h // 5
        x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
        x1, y1 = min(width, x + w + pad_x), min(height, y + h + pad_y)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        small = cv2.resize(out[y0:y1, x0:x1], (BLUR_BLOCKS, BLUR_BLOCKS), interpolation=cv2.INTER_AREA)
        out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return out


def draw_annotations(frame_bgr: np.ndarray, faces: Iterable[tuple], *, alerting: bool = False) -> np.ndarray:
    """An annotated copy: a box per face (red while it alerts) with ``#id label score``; a red border when ``alerting``."""
    out = frame_bgr.copy() if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    # Labels scale with the frame: the console shows a 640-px live frame in a tile half that wide,
    # where a fixed small font is a few pixels high; FONT_SCALE_PER_PX keeps the text about 1/30 of the side.
    thickness = max(1, round(max(out.shape[:2]) / 400))
    font_scale = max(0.5, max(out.shape[:2]) * FONT_SCALE_PER_PX)
    for face in faces:
        face = FaceAnnotation(*face)
        x, y, w, h = face.box
        color = ALERT_BGR if face.alerting else CALM_BGR
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness)
        parts = [f"#{face.track_id}" if face.track_id is not None else "", face.label or "", f"{face.score:.2f}" if face.label else ""]
        text = " ".join(part for part in parts if part)
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
            top = y - th - base - 2 if y - th - base - 2 >= 0 else y + h
            cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 2), color, cv2.FILLED)
            cv2.putText(out, text, (x + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
    if alerting:
        cv2.rectangle(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), ALERT_BGR, thickness * 4)
    return out
