"""Training-side augmentation of prepared uint8 faces, on the CPU, per batch.

Why not keras preprocessing layers inside the model: with the JAX and torch
backends on a GPU their per-image affine ops compiled or ran so slowly that an
epoch of FER-2013 did not finish in minutes (measured on an H100; see
docs/training.md). One OpenCV affine warp per face costs microseconds, runs in
the data-loader threads, and works the same under every Keras backend.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.presets import Augmentation


def random_affine(size: int, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """A 2x3 matrix: zoom, shear, rotation and shift about the image centre."""
    zoom = 1.0 + rng.uniform(-aug.zoom, aug.zoom)
    shear = rng.uniform(-aug.shear, aug.shear)
    angle = rng.uniform(-aug.rotation, aug.rotation) * 2 * np.pi
    shift = rng.uniform(-aug.shift, aug.shift, size=2) * size
    cos, sin = np.cos(angle), np.sin(angle)
    linear = zoom * np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    centre = np.array([size / 2, size / 2])
    offset = centre - linear @ centre + shift
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


def augment_faces(faces: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Return augmented copies of ``(N, S, S)`` uint8 faces."""
    out = np.empty_like(faces)
    size = faces.shape[1]
    for i, face in enumerate(faces):
        if aug.horizontal_flip and rng.random() < 0.5:
            face = face[:, ::-1]
        if aug.zoom or aug.shear or aug.rotation or aug.shift:
            face = cv2.warpAffine(np.ascontiguousarray(face), random_affine(size, aug, rng), (size, size),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if aug.contrast:
            factor = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
            mean = face.mean()
            face = np.clip((face.astype(np.float32) - mean) * factor + mean, 0, 255).astype(np.uint8)
        if aug.erasing and rng.random() < aug.erasing:
            face = face.copy()
            area = rng.uniform(0.02, 0.2) * size * size
            h = int(np.clip(np.sqrt(area * rng.uniform(0.5, 2.0)), 1, size))
            w = int(np.clip(area / h, 1, size))
            y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            face[y:y + h, x:x + w] = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        out[i] = face
    return out
