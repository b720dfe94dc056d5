"""FrameSource on video files and its reconnect backoff: pacing, newest-frame semantics, counting."""

from __future__ import annotations

import random
import time
from pathlib import Path

import cv2
import pytest
from prometheus_client import REGISTRY

from fer_stream.camera import FrameSource, SourceState
from fer_stream.camera.backoff import Backoff
from fer_stream.config.models import CameraConfig


def metric(name: str, camera: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"camera": camera, **labels}) or 0.0


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_file_is_paced_like_a_live_camera_and_every_frame_is_counted(media_dir: Path):
    path = media_dir / "smiling_woman_phone.mp4"  # 4.7 s at 25 fps
    camera = CameraConfig(name="paced-file", source=str(path))
    started = time.monotonic()
    taken = 0
    with FrameSource(camera) as source:
        while source.state is not SourceState.FINISHED:
            if source.latest(timeout=1.0) is not None:
                taken += 1
                time.sleep(0.1)  # a consumer slower than the camera
        taken += source.latest(timeout=0) is not None  # a finished source still hands out its last frame
        elapsed = time.monotonic() - started
    read = metric("fer_camera_frames_read_total", "paced-file")
    stale = metric("fer_camera_frames_skipped_total", "paced-file", reason="stale")
    assert read == frame_count(path)
    assert elapsed >= 4.0, "a realtime file must take about its own duration, not decode as fast as possible"
    assert 0 < taken < read
    assert taken + stale == read, "every decoded frame is either handed out or counted as stale"
    assert metric("fer_camera_up", "paced-file") == 0, "a finished file is not up"


def test_file_read_without_realtime_hands_over_every_frame_in_order(media_dir: Path):
    path = media_dir / "smiling_woman_phone.mp4"
    camera = CameraConfig(name="lockstep", source=str(path), realtime=False)
    ids = []
    with FrameSource(camera) as source:
        time.sleep(0.5)  # a consumer that is late must not cost frames
        while (frame := source.latest(timeout=5.0)) is not None:
            assert frame.image.ndim == 3
            assert frame.captured_monotonic <= time.monotonic() and abs(frame.captured_at - time.time()) < 60
            ids.append(frame.frame_id)
        assert source.state is SourceState.FINISHED
        assert source.latest(timeout=0.2) is None, "no frame is handed out twice"
    assert ids == list(range(1, frame_count(path) + 1))
    assert metric("fer_camera_frames_read_total", "lockstep") == len(ids)
    assert metric("fer_camera_frames_skipped_total", "lockstep", reason="stale") == 0


def test_looped_file_starts_again_instead_of_finishing(media_dir: Path):
    path = media_dir / "smiling_woman_phone.mp4"
    camera = CameraConfig(name="looped", source=str(path), loop=True, realtime=False)
    wanted = 2 * frame_count(path) + 1
    with FrameSource(camera) as source:
        taken = 0
        while taken < wanted:
            assert source.latest(timeout=10.0) is not None, f"the looped file stopped after {taken} frames"
            taken += 1
        assert source.state is SourceState.UP
        assert metric("fer_camera_reconnects_total", "looped") == 0, "looping is not a reconnect"


def test_unreadable_file_is_down_with_backoff_not_an_exception(tmp_path: Path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 1000)
    camera = CameraConfig(name="broken-file", source=str(broken), reconnect_initial_s=0.1, reconnect_max_s=0.2)
    with FrameSource(camera) as source:
        assert wait_for(lambda: metric("fer_camera_reconnects_total", "broken-file") >= 2)
        assert source.state is SourceState.DOWN
        assert source.latest(timeout=0.1) is None


def test_backoff_doubles_up_to_the_cap_with_jitter_below_each_step():
    backoff = Backoff(0.5, 4.0, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next() for _ in range(6)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling
    assert len(set(delays)) == len(delays), "jitter spreads retries"
    backoff.reset()
    assert backoff.next() <= 0.5


def test_backoff_refuses_an_inverted_range():
    with pytest.raises(ValueError, match="initial_s <= maximum_s"):
        Backoff(5.0, 1.0)


def test_a_live_source_converts_only_the_frames_its_consumer_takes(media_dir: Path, monkeypatch):
    """30 frames a second read, 5 taken: 5 pay the colour conversion, not 30 (grab without retrieve)."""
    from fer_stream.camera import source as source_module

    retrieved = []
    real = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, *args) -> None:
            self._capture = real(*args)

        def __getattr__(self, name: str):
            return getattr(self._capture, name)

        def retrieve(self):
            retrieved.append(time.monotonic())
            return self._capture.retrieve()

    monkeypatch.setattr(source_module.cv2, "VideoCapture", CountingCapture)
    camera = CameraConfig(name="on-demand", source=str(media_dir / "angry_man.mp4"))
    taken = []
    with FrameSource(camera) as source:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            frame = source.latest(timeout=1.0)
            if frame is not None:
                taken.append(time.monotonic() - frame.captured_monotonic)
                time.sleep(0.2)  # the pipeline samples 5 frames a second
    read = metric("fer_camera_frames_read_total", "on-demand")
    assert read >= 60, "the reader keeps reading the 30 fps file in real time"
    assert len(taken) >= 10 and len(retrieved) <= len(taken) + 2, f"{len(retrieved)} conversions for {len(taken)} frames taken"
    assert max(taken) < 0.1, "a frame handed out was read after the consumer asked, not long before"
    assert metric("fer_camera_frames_skipped_total", "on-demand", reason="stale") >= read - len(retrieved)
