"""A camera as a stream of newest frames: RTSP, USB or a video file, reconnecting by itself.

A reader thread reads continuously and hands out only the newest frame, so a slow
consumer never builds latency. It decodes every frame (the codec needs them) but
converts one to a picture only while the consumer waits for one: a camera sending
30 frames a second to a pipeline sampling 10 pays the colour conversion and copy
of 10 (``grab`` without ``retrieve``). Frames not handed out are counted as
skipped (``reason="stale"``). A file read with ``realtime: false`` is
the exception: there is no clock to keep up with, so the reader hands over every
frame in order and waits until it is taken (decoding a frame only to drop it
would spend the CPU the pipeline needs). A stream that fails to open, breaks or
stalls (no frame for ``stall_timeout_s``) marks the camera down and is reopened
with exponential backoff and jitter; the camera comes back up on its own. A
file that ends is *finished* (or starts again with ``loop``), not an error.

Sources may carry credentials: only :func:`redact_url` forms reach the logs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from fer_stream.camera.backoff import Backoff
from fer_stream.camera.diagnosis import diagnose
from fer_stream.config.models import CameraConfig
from fer_stream.messages import SourceState
from fer_stream.metrics import (
    CAMERA_RECONNECTS,
    CAMERA_STALLS,
    CAMERA_UP,
    FRAMES_CORRUPT,
    FRAMES_READ,
    FRAMES_SKIPPED,
)

log = logging.getLogger(__name__)

#: OpenCV reads FFmpeg's options from this variable when a capture opens; it is process-wide.
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPEN_LOCK = threading.Lock()
#: Files without a usable fps in their header are paced at this rate.
FALLBACK_FILE_FPS = 25.0
#: A paced file that fell this far behind restarts its schedule instead of bursting to catch up.
MAX_PACING_LAG_S = 1.0
#: Marks a frame read but not converted (nobody waited for it).
NOT_CONVERTED = np.empty(0, np.uint8)


def _end_of_file(frames: int) -> str:
    """The reason a finished file camera gives: FFmpeg plays a still picture as a video of one frame."""
    if frames == 1:
        return "end of file after its only frame: a still picture, not a video"
    return f"end of file ({frames} frames)"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``captured_at`` is wall-clock (``time.time()``), ``captured_monotonic`` for latencies."""

    frame_id: int
    captured_at: float
    captured_monotonic: float
    image: np.ndarray


class FrameSource:
    """Reads one camera on a background thread; :meth:`latest` hands out the newest frame not yet taken."""

    def __init__(self, camera: CameraConfig, *, start: bool = True):
        self.camera = camera
        self.native_fps: float | None = None
        self._backoff = Backoff(camera.reconnect_initial_s, camera.reconnect_max_s)
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._frame: Frame | None = None
        self._taken_id = 0
        self._next_id = 1
        self._wanted = False  # the consumer waits in latest(): the next frame read is converted for it
        self._last_read = time.monotonic()  # of the last frame read, converted or not (stall detection)
        self._state = SourceState.STARTING
        self._reason = "opening"
        self._stall_counted = False
        self._frames_in_file = 0  # frames the file held, once it ended
        self._up = CAMERA_UP.labels(camera=camera.name)
        self._m_read = FRAMES_READ.labels(camera=camera.name)  # counted per frame: labels looked up once
        self._m_stale = FRAMES_SKIPPED.labels(camera=camera.name, reason="stale")
        self._up.set(0)
        self._thread = threading.Thread(target=self._run, name=f"frames-{camera.name}", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        self._thread.start()

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def reason(self) -> str:
        """Why the source is in its state, for /status (never holds the password)."""
        return self._reason

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not handed out before, waiting up to ``timeout`` s; None if none came (or finished)."""
        with self._changed:
            self._wanted = True
            self._changed.wait_for(self._has_news, timeout)
            self._wanted = False
            frame = self._frame
            if frame is None or frame.frame_id <= self._taken_id:
                self._check_stall()
                return None
            self._taken_id = frame.frame_id
            self._changed.notify_all()  # a lockstep reader waits for this
            return frame

    def _check_stall(self) -> None:
        """A live stream that sent nothing for stall_timeout_s is down now, though FFmpeg's read may block longer."""
        if self.camera.kind == "file" or self._state is not SourceState.UP or self._frame is None:
            return
        silent = time.monotonic() - max(self._frame.captured_monotonic, self._last_read)
        if silent > self.camera.stall_timeout_s:
            CAMERA_STALLS.labels(camera=self.camera.name).inc()
            self._stall_counted = True
            self._mark_down(f"no frame for {self.camera.stall_timeout_s:g} s (stalled)")

    def close(self, timeout: float = 2.0) -> None:
        """Stop reading. A read blocked inside FFmpeg ends by its own timeout; the thread is a daemon."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrameSource({self.camera.name}, {self.camera.redacted_source}, {self._state})"

    # --- reader thread -------------------------------------------------------------

    @property
    def _lockstep(self) -> bool:
        return self.camera.kind == "file" and not self.camera.realtime

    def _has_news(self) -> bool:
        fresh = self._frame is not None and self._frame.frame_id > self._taken_id
        return fresh or self._stop.is_set() or self._state is SourceState.FINISHED

    def _run(self) -> None:
        reopening = False
        try:
            while not self._stop.is_set():
                if reopening:
                    CAMERA_RECONNECTS.labels(camera=self.camera.name).inc()
                reopening = True
                capture = self._open()
                if capture is None:
                    self._mark_down(f"cannot open the stream: {diagnose(self.camera)}")
                    self._stop.wait(self._backoff.next())
                    continue
                try:
                    outcome = self._read(capture)
                finally:
                    capture.release()
                if outcome == "ended":
                    if not self.camera.loop:
                        self._set_state(SourceState.FINISHED, _end_of_file(self._frames_in_file))
                        return
                    reopening = False  # looping a file is not a reconnect
                elif outcome == "lost":
                    if not self._stall_counted:  # the consumer may have noticed the stall first
                        CAMERA_STALLS.labels(camera=self.camera.name).inc()
                        self._mark_down(f"no frame for {self.camera.stall_timeout_s:g} s or the stream broke")
                    self._stop.wait(self._backoff.next())
        finally:
            self._up.set(0)

    def _open(self) -> cv2.VideoCapture | None:
        camera = self.camera
        try:
            if camera.kind == "rtsp":
                params = [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(camera.open_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(camera.stall_timeout_s * 1000),
                ]  # fmt: skip
                with _OPEN_LOCK:
                    os.environ[FFMPEG_OPTIONS_ENV] = f"rtsp_transport;{camera.rtsp_transport}"
                    capture = cv2.VideoCapture(camera.source, cv2.CAP_FFMPEG, params)
            elif camera.kind == "usb":
                capture = cv2.VideoCapture(camera.source, cv2.CAP_V4L2)
            else:
                capture = cv2.VideoCapture(camera.source, cv2.CAP_FFMPEG)
        except cv2.error as exc:
            log.warning("camera %s (%s): OpenCV refused the source: %s", camera.name, camera.redacted_source, exc)
            return None
        if not capture.isOpened():
            capture.release()
            return None
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = fps if 0 < fps < 1000 else None
        return capture

    def _read(self, capture: cv2.VideoCapture) -> str:
        """Deliver frames until the stream ends (``ended``), breaks or stalls (``lost``), or we are closed."""
        camera = self.camera
        is_file = camera.kind == "file"
        paced = is_file and camera.realtime
        interval = 1.0 / (self.native_fps or FALLBACK_FILE_FPS)
        due = time.monotonic()
        last_good = time.monotonic()
        delivered = 0
        on_demand = not self._lockstep
        while not self._stop.is_set():
            if on_demand:
                ok = capture.grab()
                image = None
                if ok and (self._wanted or self._state is not SourceState.UP):
                    ok, image = capture.retrieve()
                elif ok:
                    image = NOT_CONVERTED
            else:
                ok, image = capture.read()
            now = time.monotonic()
            if not ok:
                # A file that ends after frames ended; one that gives none is broken, not finished.
                self._frames_in_file = delivered
                return "ended" if is_file and delivered else "lost"
            if not is_file and delivered and now - last_good > camera.stall_timeout_s:
                return "lost"  # FFmpeg's read timed out with one last frame: the stream stalled all the same
            if image is NOT_CONVERTED:
                self._last_read = last_good = now
                delivered += 1
                self._m_read.inc()
                self._m_stale.inc()
                due = self._pace(paced, due, interval, now)
                continue
            if image is None or image.size == 0:
                FRAMES_CORRUPT.labels(camera=camera.name).inc()
                if now - last_good > camera.stall_timeout_s:
                    return "lost"
                continue
            self._last_read = last_good = now
            delivered += 1
            self._publish(image, now)
            due = self._pace(paced, due, interval, now)
        return "closed"

    def _pace(self, paced: bool, due: float, interval: float, now: float) -> float:
        """A realtime file waits for its next frame's time, like a camera; returns the new due time."""
        if not paced:
            return due
        due += interval
        if now - due > MAX_PACING_LAG_S:
            due = now
        self._stop.wait(max(0.0, due - time.monotonic()))
        return due

    def _publish(self, image: np.ndarray, monotonic_now: float) -> None:
        self._m_read.inc()
        with self._changed:
            if self._lockstep:
                self._changed.wait_for(lambda: self._frame is None or self._frame.frame_id <= self._taken_id or self._stop.is_set())
                if self._stop.is_set():
                    return
                monotonic_now = time.monotonic()  # the frame arrives when the consumer can take it
            if self._frame is not None and self._frame.frame_id > self._taken_id:
                self._m_stale.inc()
            self._frame = Frame(self._next_id, time.time(), monotonic_now, image)
            self._next_id += 1
            self._stall_counted = False
            if self._state is not SourceState.UP:
                self._set_state(SourceState.UP, f"receiving frames ({image.shape[1]}x{image.shape[0]})")
            self._changed.notify_all()

    def _mark_down(self, reason: str) -> None:
        self._set_state(SourceState.DOWN, reason)

    def _set_state(self, state: SourceState, reason: str) -> None:
        with self._changed:
            changed_reason, self._reason = reason != self._reason, reason
            if state is self._state:
                if changed_reason and state is SourceState.DOWN:
                    log.warning("camera %s (%s) still down: %s", self.camera.name, self.camera.redacted_source, reason)
                return
            self._state = state
            self._up.set(1 if state is SourceState.UP else 0)
            if state is SourceState.UP:
                self._backoff.reset()
            self._changed.notify_all()
        level = logging.WARNING if state is SourceState.DOWN else logging.INFO
        log.log(level, "camera %s (%s) %s: %s", self.camera.name, self.camera.redacted_source, state, reason)
