"""The motion gate: where a camera's scene changed, found on a small grey copy of each frame.

Face detection is most of a frame's cost, and most cameras of a site look at
empty, still scenes most of the time. As production video systems do, each
frame is first shrunk to ``motion.width`` grey pixels and blurred (sensor noise
averages out), then compared with a running average of the scene
(``cv2.accumulateWeighted``, which also absorbs slow lighting drift). Pixels
that differ by ``motion.threshold`` grey levels, outside the masks, are opened
(isolated specks dropped) and dilated (the parts of one moving thing joined);
the bounding boxes of their outer contours (``cv2.findContours``) holding at
least ``motion.min_area`` of the frame in changed pixels are the motion. A change over most of the
frame (lights switched on, the exposure jumping) is motion once and resets the
average, instead of reading as motion for seconds. The first frame of a scene
is all motion: nothing is known about it yet.
"""

from __future__ import annotations

import cv2
import numpy as np

from fer_stream.config.models import MotionSettings

Box = tuple[int, int, int, int]
#: Weight of each new frame in the scene's running average (at 10 fps the scene follows a change within ~2 s).
AVERAGE_ALPHA = 0.05
#: Share of the grey copy that, changed at once, is a change of the whole scene rather than something moving in it.
SCENE_CHANGE_SHARE = 0.5
_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


class MotionGate:
    """One camera's motion. Not thread-safe: one per camera."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._average: np.ndarray | None = None
        self._keep: np.ndarray | None = None  # 255 where change counts, 0 under the masks

    def update(self, frame_bgr: np.ndarray) -> list[Box]:
        """The regions of this frame that moved, as ``(x, y, w, h)`` boxes in full-frame pixels (none: a still scene)."""
        frame_h, frame_w = frame_bgr.shape[:2]
        width = min(self.settings.width, frame_w)
        height = max(1, round(frame_h * width / frame_w))
        small = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        if self._average is None or self._average.shape != grey.shape:
            self._average = grey.astype(np.float32)
            self._keep = self._mask(width, height)
            return [(0, 0, frame_w, frame_h)]
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._average))
        _, changed = cv2.threshold(diff, self.settings.threshold, 255, cv2.THRESH_BINARY)
        if self._keep is not None:
            changed = cv2.bitwise_and(changed, self._keep)
        if cv2.countNonZero(changed) > SCENE_CHANGE_SHARE * width * height:
            self._average = grey.astype(np.float32)
            return [(0, 0, frame_w, frame_h)]
        cv2.accumulateWeighted(grey, self._average, AVERAGE_ALPHA)
        changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, _KERNEL)
        contours, _ = cv2.findContours(cv2.dilate(changed, _KERNEL, iterations=2), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_px = self.settings.min_area * width * height
        scale_x, scale_y = frame_w / width, frame_h / height
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if cv2.countNonZero(changed[y:y + h, x:x + w]) < min_px:  # the pixels that changed, not the joined outline
                continue
            boxes.append((int(x * scale_x), int(y * scale_y), int(np.ceil(w * scale_x)), int(np.ceil(h * scale_y))))
        return boxes

    def _mask(self, width: int, height: int) -> np.ndarray | None:
        if not self.settings.masks:
            return None
        keep = np.full((height, width), 255, np.uint8)
        for x, y, w, h in self.settings.masks:
            x0, y0 = int(np.floor(x * width)), int(np.floor(y * height))
            x1, y1 = int(np.ceil((x + w) * width)), int(np.ceil((y + h) * height))
            keep[y0:y1, x0:x1] = 0
        return keep
