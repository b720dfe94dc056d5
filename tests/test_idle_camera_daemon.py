"""The real daemon on a camera that watches a still, empty room, then a man who walks in angry.

While the room is still the camera keeps reading frames but runs no face detection and says so
(``fer_camera_idle`` 1, ``fer_detector_runs_total`` unchanged); once he is in view it detects,
classifies and raises the angry alert to Redis.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_fixtures import REPO, Daemon, camera, wait_for
from redis_fixtures import redis_server  # noqa: F401 (a fixture)
from test_motion import scene, shot

pytestmark = pytest.mark.slow

if not (os.environ.get("FER_STREAM_MODEL") or (REPO / "models" / "DEFAULT").is_file()):
    pytest.skip("no model: ship one into models/ (models/DEFAULT) or set FER_STREAM_MODEL", allow_module_level=True)

STILL_S = 12.0
FPS = 10


def still_room_then_angry_man(media_dir: Path, target: Path) -> Path:
    """STILL_S seconds of an empty room with sensor noise, then angry_man.mp4 (every 3rd frame: 10 fps) inside it.

    Motion JPEG at quality 95 (OpenCV's own encoder), so the man's face is as in the clip, not re-compressed.
    """
    background, rng = scene(), np.random.default_rng(0)
    writer = cv2.VideoWriter(str(target), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 360),
                             [cv2.VIDEOWRITER_PROP_QUALITY, 95])
    for _ in range(int(STILL_S * FPS)):
        writer.write(shot(background, rng))
    capture = cv2.VideoCapture(str(media_dir / "angry_man.mp4"))
    index = 0
    while True:
        ok, person = capture.read()
        if not ok:
            break
        if index % 3 == 0:
            frame = shot(background, rng)
            frame[40:40 + person.shape[0], 80:80 + person.shape[1]] = person
            writer.write(frame)
        index += 1
    capture.release()
    writer.release()
    return target


def test_a_still_room_is_idle_without_detection_then_a_face_walks_in_and_alerts(tmp_path, redis_server, media_dir, yunet_model):
    video = still_room_then_angry_man(media_dir, tmp_path / "room.avi")
    # Rules of their own: the test is about what an idle camera does, not where the shipped thresholds sit.
    rules = "alerts:\n  rules:\n    watched: [angry]\n    enter_threshold: 0.3\n    release_threshold: 0.2\n"
    daemon = Daemon(tmp_path, redis_server, camera("room", video), yunet_model, extra=rules)
    try:
        started = daemon.stream_start("room")
        idle = wait_for("the camera to report itself idle",
                        lambda: (m := daemon.metrics()).value("fer_camera_idle", camera="room") == 1 and m, timeout=20, every=0.2)
        time.sleep(2.0)
        later = daemon.metrics()
        assert time.time() - started < STILL_S - 1, "the still part of the video ran out before the check; a slow machine"
        assert later.value("fer_camera_idle", camera="room") == 1
        assert later.value("fer_camera_frames_read_total", camera="room") > idle.value("fer_camera_frames_read_total", camera="room")
        assert later.value("fer_camera_frames_idle_total", camera="room") >= idle.value(
            "fer_camera_frames_idle_total", camera="room") + 10, "it keeps sampling its frames"
        assert later.value("fer_detector_runs_total", camera="room") == idle.value("fer_detector_runs_total", camera="room"), (
            "no detection while idle")
        assert later.value("fer_faces_classified_total", camera="room") == 0
        alerted = wait_for(
            "the angry start alert",
            lambda: (m := daemon.metrics()).value("fer_alerts_published_total", camera="room", emotion="angry", event="start")
            >= 1 and m, timeout=60, every=0.2)
        assert alerted.value("fer_camera_idle", camera="room") == 0
        assert alerted.value("fer_detector_runs_total", camera="room", scan="full") > idle.value(
            "fer_detector_runs_total", camera="room", scan="full")
        arrived = time.time() - started
        assert STILL_S < arrived < STILL_S + 15, f"the alert came {arrived:.1f} s into the video"
    finally:
        daemon.stop()
