"""The camera process: frames -> faces -> tracks -> inference requests, results -> alerts.

One process per camera, so a slow decoder, a hung stream or a crash costs only
that camera, and ``top`` shows each camera's CPU by name. The loop never blocks
on another process: requests, alerts, status and views all go through bounded
drop-oldest queues. Per-track state (the latest label, the alert rules' smoothing)
lives here; the inference worker keeps none.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from fer_stream.alerts.message import Alert, EndReason
from fer_stream.camera.overload import FpsGovernor
from fer_stream.camera.slots import CpuSlots
from fer_stream.config.models import CameraSettings, ConsoleSettings
from fer_stream.evidence.recorder import EvidenceRecorder
from fer_stream.faces import blur_faces, draw_annotations
from fer_stream.faces.quality import QualityProblem
from fer_stream.messages import AlertEvent, CameraStatus, CameraView, FaceRequest, FaceResult, SourceState
from fer_stream.queues import BoundedQueue

log = logging.getLogger(__name__)

#: Seconds between heartbeats to the supervisor.
STATUS_EVERY_S = 1.0
JPEG_QUALITY = 70
#: How much lower than the inference worker's the camera processes' CPU priority is.
CAMERA_NICENESS = 5
#: Longest a camera waits for a CPU slot before it lets the frame go (counted as shed).
SLOT_WAIT_S = 1.0
#: Longest a stopping camera waits for its last alerts (episode ends) to reach the supervisor's pipe.
ALERT_FLUSH_S = 1.0


@dataclass(frozen=True)
class CameraSpec:
    """Everything a camera worker needs, resolved by the supervisor."""

    settings: CameraSettings
    labels: tuple[str, ...]
    input_size: int
    model_id: str
    model_version: str
    alerts_enabled: bool = True
    log_level: str = "INFO"
    #: Above every track id an earlier worker of this camera used, so ids are not reused after a restart.
    first_track_id: int = 1
    #: Faces waiting for the classifier beyond which the camera is behind (overload control).
    max_backlog: int = 64
    #: emotion -> epoch second: episodes a dead predecessor left open still cool down (AlertTracker).
    camera_cooldowns: dict[str, float] = field(default_factory=dict)
    #: Whether alert events get pictures (alerts.snapshots.enabled).
    snapshots: bool = True
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    #: The daemon's shard of the cameras (I/N), carried by its alerts; None when it runs them all.
    shard: str | None = None

    @property
    def name(self) -> str:
        return self.settings.camera.name


@dataclass(frozen=True)
class CameraQueues:
    """The queues a camera process uses; all bounded, all drop-oldest.

    ``alerts`` is this worker's own: it is its only writer, so its death mid-message cannot corrupt what
    another camera sends, and the supervisor drops the half-written message (``BoundedQueue.reader_only``).
    """

    requests: BoundedQueue[FaceRequest]
    results: BoundedQueue[FaceResult]
    alerts: BoundedQueue[AlertEvent]
    status: BoundedQueue[CameraStatus]
    views: BoundedQueue[CameraView]

    def outgoing(self) -> tuple[BoundedQueue, ...]:
        return (self.requests, self.alerts, self.status, self.views)


def main(spec: CameraSpec, queues: CameraQueues, view_wanted, slots: CpuSlots | None, parent_pid: int, heartbeat) -> None:
    """Process entry point (spawned by the supervisor); ``heartbeat`` (shared double) gets the time of each step.

    ``view_wanted`` (an Event) is set by the supervisor while someone watches this camera on the console;
    ``slots`` (overload control) bounds how many cameras work on a frame at once.
    """
    from fer_stream.process import parent_alive, start_child

    stop = start_child(f"camera {spec.name}", spec.log_level)
    # One process per camera already spreads cameras over the cores; OpenCV's own
    # thread pool in every camera process would only oversubscribe them.
    cv2.setNumThreads(1)
    # Below the inference worker: past capacity the classifier still gets the CPU it needs, and the
    # cameras, which govern their own rate, are the ones that slow down.
    os.nice(CAMERA_NICENESS)
    for q in queues.outgoing():
        q.detach_on_exit()
    loop = CameraLoop(spec, queues, view_wanted, slots)
    loop.start()
    reason: EndReason = "camera_stopped"
    try:
        while not loop.finished:
            if stop.is_set() or not parent_alive(parent_pid):
                reason = "daemon_stopped"
                break
            heartbeat.value = time.monotonic()  # the supervisor's watchdog reads it
            loop.step()
    finally:
        loop.close(reason)
    log.info("stopped")


class CameraLoop:
    """One camera's pipeline, one ``step`` per processed frame (or per idle wait)."""

    def __init__(self, spec: CameraSpec, queues: CameraQueues, view_wanted, slots: CpuSlots | None = None) -> None:
        from fer_stream.camera.source import FrameSource
        from fer_stream.pipeline import build_pipeline

        settings = spec.settings
        self.spec = spec
        self.name = spec.name
        self.queues = queues
        self.view_wanted = view_wanted
        self.slots = slots
        overload = settings.overload
        self.governor = (
            FpsGovernor(target_fps=settings.camera.fps, min_fps=overload.min_fps, max_backlog=spec.max_backlog,
                        max_latency_s=overload.max_latency_s)
            if overload.enabled else None
        )  # fmt: skip
        self._latencies: list[float] = []
        self._busy_s = 0.0
        self._governed_at = 0.0
        self.source = FrameSource(settings.camera, start=False)
        self.pipeline = build_pipeline(
            settings,
            labels=spec.labels,
            input_size=spec.input_size,
            model_id=spec.model_id,
            model_version=spec.model_version,
            alerts_enabled=spec.alerts_enabled,
            first_track_id=spec.first_track_id,
            camera_cooldowns=spec.camera_cooldowns,
            shard=spec.shard,
        )
        self.recorder = EvidenceRecorder(blur=spec.console.blur_faces) if spec.snapshots and spec.alerts_enabled else None
        self.finished = False
        self._next_due = 0.0
        self._last_frame_id: int | None = None
        self._last_status = 0.0
        self._last_view = 0.0
        self._processed_times: list[float] = []
        self._metrics()

    def _metrics(self) -> None:
        from fer_stream import metrics

        cam = self.name
        self.m_processed = metrics.FRAMES_PROCESSED.labels(camera=cam)
        self.m_detected = metrics.FACES_DETECTED.labels(camera=cam)
        self.m_idle = metrics.CAMERA_IDLE.labels(camera=cam)
        self.m_idle.set(0)
        self.m_idle_frames = metrics.FRAMES_IDLE.labels(camera=cam)
        self.m_detector_runs = {scan: metrics.DETECTOR_RUNS.labels(camera=cam, scan=scan) for scan in ("full", "around")}
        self.m_deferred = metrics.FACES_DEFERRED.labels(camera=cam)
        self.m_detect_s = metrics.DETECTION_SECONDS.labels(camera=cam)
        self.m_classified = metrics.FACES_CLASSIFIED.labels(camera=cam)
        self.m_e2e = metrics.END_TO_END_SECONDS.labels(camera=cam)
        self.m_tracks = metrics.TRACKS_ACTIVE.labels(camera=cam)
        self.m_predictions = {label: metrics.PREDICTIONS.labels(camera=cam, emotion=label) for label in self.spec.labels}
        self.m_sampling_fps = metrics.CAMERA_SAMPLING_FPS.labels(camera=cam)
        self.m_sampling_fps.set(self.spec.settings.camera.fps)
        self.m_over_capacity = metrics.CAMERA_OVER_CAPACITY.labels(camera=cam)
        self.m_over_capacity.set(0)
        self.m_shed = metrics.FRAMES_SHED.labels(camera=cam)
        self.m_view_encoded = metrics.CONSOLE_FRAMES_ENCODED.labels(camera=cam)
        self.m_gated = {problem: metrics.FACES_GATED.labels(camera=cam, reason=problem.value) for problem in QualityProblem}

    def start(self) -> None:
        self.source.start()

    def close(self, reason: EndReason = "camera_stopped") -> None:
        """End the open alert episodes, stop reading and hand the end events over before the process exits."""
        self.handle_results()  # classifications already back still count
        self.end_episodes(reason)  # written to the pipe while the reader thread stops
        self.source.close()
        if not self.queues.alerts.flush(ALERT_FLUSH_S):
            log.warning("the supervisor did not take the last alerts within %.0f s; they are lost", ALERT_FLUSH_S)
        if self.finished:  # a last status: the console shows the file as finished, not as starting or silent
            self.send_status(time.monotonic())
            self.queues.status.flush(ALERT_FLUSH_S)

    def end_episodes(self, reason: EndReason) -> None:
        """End every open alert episode and forget the faces (the camera stops, or its stream is lost)."""
        for alert in self.pipeline.finish(time.time(), reason):
            self.send_alert(alert)

    def send_alert(self, alert: Alert) -> None:
        """Hand an alert to the supervisor with its pictures (start and end events, while pictures are on)."""
        pictured = None if self.recorder is None else self.recorder.picture(alert)
        if pictured is None:
            self.queues.alerts.put(AlertEvent(alert=alert))
        else:
            alert, pictures = pictured
            self.queues.alerts.put(AlertEvent(alert=alert, pictures=pictures))

    def step(self) -> None:
        now = time.monotonic()
        self.handle_results()
        if now - self._last_status >= STATUS_EVERY_S:
            self.send_status(now)
        wait = self._next_due - now
        if wait > 0:
            # Results keep flowing while we wait for the next sampled frame.
            self.queues.results.wait(min(wait, 0.25))
            return
        frame = self.source.latest(timeout=min(self.period, 0.25))
        if frame is None or frame.frame_id == self._last_frame_id:
            state = self.source.state
            self.finished = state is SourceState.FINISHED
            if state is SourceState.DOWN:
                # Stalled, broken or not opening: the faces are gone now, whenever the stream comes back.
                self.end_episodes("camera_stopped")
            return
        self._last_frame_id = frame.frame_id
        self._next_due = max(self._next_due + self.period, now - self.period)
        started = time.perf_counter()
        motion = self.pipeline.moved(frame.image)
        # A still frame with no face costs a fraction of a millisecond: it takes no CPU slot, so it never queues
        # behind the frames being detected on other cameras.
        slots = None if self.pipeline.idle(motion) else self.slots
        slot = None if slots is None else slots.acquire(SLOT_WAIT_S)
        if slots is not None and slot is None:
            self.m_shed.inc()  # no core came free for it: the frame goes unprocessed
        else:
            try:
                self.process(frame, motion, started)
            finally:
                if slots is not None and slot is not None:
                    slots.release(slot)
        self._busy_s += time.monotonic() - now  # waiting for a slot counts: the CPU is what is short

    def process(self, frame, motion, started: float) -> None:
        """Run one sampled frame through the pipeline (``motion``: the gate's answer for it, ``started``: perf_counter)."""
        faces = self.pipeline.faces(frame.image, frame.captured_at, motion)
        self.m_detect_s.observe(time.perf_counter() - started)
        self.m_processed.inc()
        self.m_detected.inc(faces.detections)
        self.m_idle.set(1 if faces.idle else 0)
        if faces.idle:
            self.m_idle_frames.inc()
        if faces.scan is not None:
            self.m_detector_runs[faces.scan].inc()
        self.m_deferred.inc(faces.deferred)
        self._processed_times.append(time.monotonic())
        for problem in faces.gated:
            self.m_gated[problem].inc()
        for crop in faces.crops:
            self.queues.requests.put(
                FaceRequest(camera=self.name, track_id=crop.track_id, frame_id=frame.frame_id, captured_at=frame.captured_at,
                            captured_monotonic=frame.captured_monotonic, face=crop.face)
            )
        if self.recorder is not None:
            self.recorder.remember(frame.image, frame.captured_at, self.face_boxes())
        for alert in faces.alerts:
            self.send_alert(alert)
        self.m_tracks.set(len(self.pipeline.tracks))
        self.maybe_send_view(frame.image)

    def face_boxes(self) -> tuple[tuple[int, int, int, int], ...]:
        return tuple(face.box for face in self.pipeline.tracks.values())

    def handle_results(self) -> None:
        now = time.monotonic()
        for result in self.queues.results.drain(256):
            self.m_e2e.observe(now - result.captured_monotonic)
            self._latencies.append(now - result.captured_monotonic)
            self.m_classified.inc()
            self.m_predictions[self.spec.labels[int(np.argmax(result.probabilities))]].inc()
            for alert in self.pipeline.observe(result.track_id, result.probabilities, result.captured_at):
                self.send_alert(alert)

    @property
    def period(self) -> float:
        return 1.0 / (self.governor.fps if self.governor else self.spec.settings.camera.fps)

    def govern(self, now: float) -> None:
        """One overload-control step: the camera's sampling rate from the classifier's backlog and its latency."""
        if self.governor is None:
            return
        latencies, self._latencies = sorted(self._latencies), []
        latency = latencies[int(0.9 * (len(latencies) - 1))] if latencies else None
        busy = self._busy_s / max(now - self._governed_at, 1e-3) if self._governed_at else 0.0
        self._busy_s, self._governed_at = 0.0, now
        self.governor.update(now, backlog=self.queues.requests.qsize(), latency_s=latency, busy=busy)
        self.m_sampling_fps.set(self.governor.fps)
        self.m_over_capacity.set(1 if self.governor.over_capacity else 0)
        self.m_shed.inc(self.governor.take_shed_frames())

    def send_status(self, now: float) -> None:
        self.govern(now)
        self._processed_times = [t for t in self._processed_times if now - t <= 5.0]
        fps = len(self._processed_times) / 5.0
        self.queues.status.put(
            CameraStatus(camera=self.name, state=self.source.state, up=self.source.state is SourceState.UP, at=now,
                         processed_fps=fps, tracks=self.pipeline.views(), reason=self.source.reason)
        )
        self._last_status = now

    def maybe_send_view(self, image: np.ndarray) -> None:
        """Encode a live-view JPEG at console.live_fps, only while someone watches this camera."""
        now = time.monotonic()
        console = self.spec.console
        if not self.view_wanted.is_set() or now - self._last_view < 1.0 / console.live_fps:
            return
        views = self.pipeline.views()
        if console.blur_faces:
            image = blur_faces(image, self.face_boxes())
        annotated = draw_annotations(
            image, [(v.box, v.emotion, v.score, v.track_id, v.alerting) for v in views], alerting=any(v.alerting for v in views)
        )
        scale = console.live_width / annotated.shape[1]
        if scale < 1:
            annotated = cv2.resize(annotated, (console.live_width, round(annotated.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            self.queues.views.put(CameraView(camera=self.name, at=now, jpeg=jpeg.tobytes()))
            self.m_view_encoded.inc()
        self._last_view = now
