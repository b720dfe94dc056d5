"""The one face preprocessing used by training, evaluation and the daemon.

FER-2013 faces are 48x48 greyscale. The model sees them as RGB at its own input
size, scaled to [0, 1]. Keeping this in numpy/OpenCV (not in a TensorFlow graph)
lets the daemon run without TensorFlow and lets a test prove, pixel for pixel,
that training and inference feed the model the same thing.

The work is split in two so the expensive part can run in the camera process
and only small uint8 arrays cross process boundaries:

1. ``prepare_face``: any crop (grey or BGR, any size) -> uint8 grey, size x size.
2. ``to_model_input``: a stack of prepared faces -> float32 RGB in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Identifier written into every model card. Bump it whenever the pixels change,
#: so a model trained with another recipe is refused instead of silently degraded.
PREPROCESSING_ID = "grey-resize_area_linear-rgb-scale01/v1"


def prepare_face(crop: np.ndarray, size: int) -> np.ndarray:
    """Return the crop as a ``size x size`` uint8 greyscale image."""
    if crop.ndim == 3:
        if crop.shape[2] == 1:
            crop = crop[:, :, 0]
        else:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if crop.dtype != np.uint8:
        raise ValueError(f"face crops must be uint8, got {crop.dtype}")
    if crop.shape != (size, size):
        # INTER_AREA when shrinking avoids aliasing; linear when enlarging 48x48 faces.
        shrinking = crop.shape[0] > size or crop.shape[1] > size
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop)


def to_model_input(faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Stack prepared ``(N, S, S)`` uint8 faces into float32 ``(N, S, S, 3)`` in [0, 1]."""
    batch = np.asarray(faces, dtype=np.uint8)
    if batch.ndim == 2:
        batch = batch[None]
    scaled = batch.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.repeat(scaled[..., None], 3, axis=-1)


