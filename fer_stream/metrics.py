"""Every Prometheus metric fer-stream exports, defined once.

Metrics are *recorded* where the event happens (the camera worker counts its
frames, the inference worker times its batches, the publisher counts alerts);
they are *defined* here so names, labels and buckets are consistent and the
dashboard has one place to read from.

Children run in prometheus_client's multiprocess mode: the supervisor sets
``PROMETHEUS_MULTIPROC_DIR`` before any child starts (and before this module is
imported), and serves the aggregate on ``/metrics``. Labels never carry
secrets: cameras are labelled by their configured *name*, never their URL.
"""

from __future__ import annotations

import glob
import os

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Milliseconds to seconds: inference batches take ~1-50 ms, end-to-end latency up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)

# --- cameras -----------------------------------------------------------------
FRAMES_READ = Counter("fer_camera_frames_read_total", "Frames decoded from the source", ["camera"])
FRAMES_PROCESSED = Counter(
    "fer_camera_frames_processed_total", "Frames processed: faces detected, or carried by their motion (detector.detect_every)", ["camera"]
)
FRAMES_SKIPPED = Counter(
    "fer_camera_frames_skipped_total",
    "Decoded frames never processed (newer frame replaced them, or fps sampling)",
    ["camera", "reason"],
)
FRAMES_SHED = Counter(
    "fer_camera_frames_shed_total", "Frames the configured fps asked for but overload control did not sample", ["camera"]
)
CAMERA_SAMPLING_FPS = Gauge(
    "fer_camera_sampling_fps", "Frames a second the camera samples now (its fps, less under overload)", ["camera"],
    multiprocess_mode="max",
)
CAMERA_OVER_CAPACITY = Gauge(
    "fer_camera_over_capacity", "1 while overload control holds the camera below its configured fps", ["camera"],
    multiprocess_mode="max",
)
FRAMES_CORRUPT = Counter("fer_camera_frames_corrupt_total", "Frames that could not be decoded or were empty", ["camera"])
CAMERA_UP = Gauge("fer_camera_up", "1 while the camera delivers frames, 0 while down", ["camera"], multiprocess_mode="max")
CAMERA_RECONNECTS = Counter("fer_camera_reconnects_total", "Attempts to reopen the stream", ["camera"])
CAMERA_STALLS = Counter("fer_camera_stalls_total", "Times the stream delivered no frame for stall_timeout_s", ["camera"])
FACES_DETECTED = Counter("fer_faces_detected_total", "Faces found by the detector", ["camera"])
CAMERA_IDLE = Gauge(
    "fer_camera_idle", "1 while the camera's scene is still and holds no tracked face: nothing is detected", ["camera"],
    multiprocess_mode="max",
)
FRAMES_IDLE = Counter(
    "fer_camera_frames_idle_total", "Processed frames with a still scene and no tracked face, so not detected", ["camera"]
)
DETECTOR_RUNS = Counter(
    "fer_detector_runs_total", "Frames the face detector ran on: the full frame, or windows around tracked faces", ["camera", "scan"]
)
FACES_DEFERRED = Counter(
    "fer_faces_deferred_total", "Tracked faces far from every alert threshold, left for a later frame's classification",
    ["camera"],
)
FACES_GATED = Counter(
    "fer_faces_gated_total", "Tracked faces not classified by the face-quality gate", ["camera", "reason"]
)
FACES_CLASSIFIED = Counter("fer_faces_classified_total", "Faces with a classification result back", ["camera"])
PREDICTIONS = Counter("fer_predictions_total", "Classified faces by top emotion", ["camera", "emotion"])
TRACKS_ACTIVE = Gauge("fer_tracks_active", "Face tracks currently followed", ["camera"], multiprocess_mode="max")
DETECTION_SECONDS = Histogram(
    "fer_detection_seconds", "Motion gate, face detection, tracking and cropping time per frame", ["camera"], buckets=LATENCY_BUCKETS
)
END_TO_END_SECONDS = Histogram(
    "fer_end_to_end_latency_seconds",
    "Frame capture to classification result back in the camera worker",
    ["camera"],
    buckets=LATENCY_BUCKETS,
)

# --- queues --------------------------------------------------------------------
QUEUE_DEPTH = Gauge(
    "fer_queue_depth", "Items waiting in a bounded queue (sampled by the supervisor each tick)", ["queue"],
    multiprocess_mode="max",
)
QUEUE_DROPPED = Counter("fer_queue_dropped_total", "Items dropped because a bounded queue was full (oldest first)", ["queue"])

# --- inference -----------------------------------------------------------------
INFERENCE_BATCH_SIZE = Histogram("fer_inference_batch_size", "Faces per inference batch", buckets=BATCH_BUCKETS)
INFERENCE_BATCH_SECONDS = Histogram("fer_inference_batch_seconds", "Model time per batch", buckets=LATENCY_BUCKETS)
INFERENCE_FACES = Counter("fer_inference_faces_total", "Faces classified by the inference worker")
MODEL_LOADED = Gauge("fer_model_loaded", "1 once the inference worker has loaded and warmed the model", multiprocess_mode="max")

# --- supervision -----------------------------------------------------------------
DAEMON_INFO = Gauge(
    "fer_daemon_info", "1, labelled with the daemon's shard of the cameras (all, or I/N) and version", ["shard", "version"],
    multiprocess_mode="max",
)
WORKER_STALLED = Gauge(
    "fer_worker_stalled", "1 while a worker has made no progress for watchdog.stall_s (it is then restarted)", ["worker"],
    multiprocess_mode="max",
)
WORKER_RESTARTS = Counter("fer_worker_restarts_total", "Child processes restarted after they died", ["worker"])

# --- alerts --------------------------------------------------------------------
ALERTS_PUBLISHED = Counter("fer_alerts_published_total", "Alert events delivered to Redis", ["camera", "emotion", "event"])
ALERT_OUTBOX_DEPTH = Gauge("fer_alert_outbox_depth", "Alerts waiting for Redis", multiprocess_mode="max")
ALERT_OUTBOX_DROPPED = Counter("fer_alert_outbox_dropped_total", "Alerts dropped because the outbox was full")
ALERT_JOURNAL_DEGRADED = Gauge(
    "fer_alert_journal_degraded",
    "1 while the alert journal cannot be written (disk full, read-only) and waiting alerts are held in memory only",
    multiprocess_mode="max",
)
ALERT_JOURNAL_WRITE_ERRORS = Counter(
    "fer_alert_journal_write_errors_total", "Writes to the alert journal that failed (disk full, read-only, I/O error)"
)
REDIS_UP = Gauge("fer_redis_up", "1 while the alert publisher is connected to Redis", multiprocess_mode="max")
ALERT_LATENCY_SECONDS = Histogram(
    "fer_alert_latency_seconds",
    "From the frame that crossed the alert threshold to the alert being published",
    buckets=LATENCY_BUCKETS,
)

# --- alert evidence and the console ---------------------------------------------
SNAPSHOT_BYTES = Gauge("fer_snapshots_bytes", "Bytes of alert pictures kept (never above alerts.snapshots.max_mb)",
                       multiprocess_mode="max")
SNAPSHOTS_STORED = Counter("fer_snapshots_stored_total", "Alert pictures written")
SNAPSHOTS_REMOVED = Counter("fer_snapshots_removed_total", "Alert pictures removed: past their retention, or for the cap", ["reason"])
CONSOLE_FRAMES_ENCODED = Counter(
    "fer_console_frames_encoded_total", "Live-view JPEGs a camera encoded (only while someone watches it)", ["camera"]
)
CONSOLE_VIEWERS = Gauge("fer_console_viewers", "Open live streams of a camera on the console", ["camera"], multiprocess_mode="max")

# --- the review loop: verdicts and flood control ----------------------------------
REVIEWS = Counter("fer_reviews_total", "Verdicts given on alert episodes (confirmed or dismissed)", ["camera", "verdict"])
REVIEWS_PUBLISHED = Counter("fer_reviews_published_total", "Review events delivered to Redis")
ALERTS_HELD_BACK = Counter(
    "fer_alerts_held_back_total", "Episode starts not published: the camera was snoozed, or at its starts-per-hour cap",
    ["camera", "reason"],
)
CAMERA_SNOOZED = Gauge("fer_camera_snoozed", "1 while an operator has snoozed the camera's alerts", ["camera"],
                       multiprocess_mode="max")


class SettledCollector(MultiProcessCollector):
    """Every process's samples, without the file of a child that is only now creating it.

    A freshly spawned child's metrics file exists, empty, for a moment before it is sized;
    prometheus_client's own collector fails the whole scrape on it.
    """

    def collect(self):
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(path) >= 8:  # the header: bytes used, and padding
                    files.append(path)
            except FileNotFoundError:
                pass  # a dead child's, removed meanwhile
        return self.merge(files, accumulate=True)
