"""The motion gate on synthetic scenes: sensor noise and lighting drift are still, moving things are not, masks hide."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from fer_stream.config.models import MotionSettings
from fer_stream.faces.motion import MotionGate

SIZE = (360, 640)


def scene(seed: int = 0) -> np.ndarray:
    """A still room: large soft shapes (walls, a door, furniture), the same for every frame."""
    rng = np.random.default_rng(seed)
    image = np.full((*SIZE, 3), 90, np.float32)
    for _ in range(12):
        x, y = rng.integers(0, SIZE[1] - 80), rng.integers(0, SIZE[0] - 60)
        image[y:y + rng.integers(40, 200), x:x + rng.integers(60, 300)] = rng.integers(30, 220, 3)
    return image


def shot(background: np.ndarray, rng: np.random.Generator, gain: float = 1.0, noise: float = 6.0) -> np.ndarray:
    """One frame of the scene as a camera delivers it: lighting ``gain`` and sensor noise of ``noise`` grey levels."""
    frame = background * gain + rng.normal(0, noise, background.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def with_object(frame: np.ndarray, x: int, y: int, side: int = 50) -> np.ndarray:
    """A ``side`` square, dark above and light below, so it stands out against any part of the scene."""
    out = frame.copy()
    out[y:y + side // 2, x:x + side] = 15
    out[y + side // 2:y + side, x:x + side] = 240
    return out


def test_the_first_frame_is_all_motion_then_a_still_scene_with_sensor_noise_is_idle():
    gate, background, rng = MotionGate(MotionSettings()), scene(), np.random.default_rng(1)
    assert gate.update(shot(background, rng)) == [(0, 0, SIZE[1], SIZE[0])], "nothing is known about a new scene"
    assert all(gate.update(shot(background, rng, noise=8.0)) == [] for _ in range(100))


def test_slow_lighting_drift_is_still_and_a_sudden_change_is_motion_once():
    gate, background, rng = MotionGate(MotionSettings()), scene(), np.random.default_rng(2)
    gate.update(shot(background, rng))
    # 15% brighter over 20 s at 10 fps: a cloud, the afternoon sun.
    assert all(gate.update(shot(background, rng, gain=1 + 0.15 * i / 200)) == [] for i in range(200))
    assert gate.update(shot(background, rng, gain=1.8)) == [(0, 0, SIZE[1], SIZE[0])], "the lights went on"
    assert all(gate.update(shot(background, rng, gain=1.8)) == [] for _ in range(20))


def test_a_moving_object_is_motion_where_it_moves():
    gate, background, rng = MotionGate(MotionSettings()), scene(), np.random.default_rng(3)
    for _ in range(5):
        gate.update(shot(background, rng))
    for step in range(10):
        x = 100 + 15 * step
        boxes = gate.update(with_object(shot(background, rng), x, 150))
        assert boxes, f"step {step}: the object moved and no motion was seen"
        assert any(bx <= x + 25 <= bx + bw and by <= 175 <= by + bh for bx, by, bw, bh in boxes), (step, boxes)


def test_motion_in_a_masked_region_is_ignored_and_elsewhere_is_not():
    settings = MotionSettings(masks=[(0.75, 0.0, 0.25, 0.3)])  # the top right corner: a clock, a screen
    gate, background, rng = MotionGate(settings), scene(), np.random.default_rng(4)
    gate.update(shot(background, rng))
    for step in range(20):  # blinks on and off in the corner
        frame = shot(background, rng)
        assert gate.update(with_object(frame, 540, 20) if step % 2 else frame) == []
    assert gate.update(with_object(shot(background, rng), 200, 200)), "the same change outside the mask is motion"


def test_a_small_change_below_min_area_is_not_motion():
    gate, background, rng = MotionGate(MotionSettings(min_area=0.01)), scene(), np.random.default_rng(5)
    gate.update(shot(background, rng))
    assert gate.update(with_object(shot(background, rng), 300, 100, side=30)) == []  # 0.4% of the frame
    assert gate.update(with_object(shot(background, rng), 300, 100, side=90)), "3.5% of the frame"


@pytest.mark.parametrize("mask", [(0.5, 0.5, 0.6, 0.1), (-0.1, 0.0, 0.2, 0.2), (0.1, 0.1, 0.0, 0.2)])
def test_a_mask_outside_the_frame_is_refused(mask):
    with pytest.raises(ValidationError, match="shares of the frame"):
        MotionSettings(masks=[mask])


def test_a_camera_masks_its_own_regions_over_the_global_motion_settings():
    from fer_stream.config import parse_config

    config = parse_config(
        "motion:\n  threshold: 30\ncameras:\n"
        "  - {name: hall, source: 0}\n"
        "  - {name: desk, source: 1, motion: {masks: [[0.85, 0.0, 0.15, 0.08]]}}\n"
    )
    hall, desk = config.camera_settings("hall").motion, config.camera_settings("desk").motion
    assert hall.masks == [] and hall.threshold == 30
    assert desk.masks == [(0.85, 0.0, 0.15, 0.08)] and desk.threshold == 30, "the rest stays global"
