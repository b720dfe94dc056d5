"""The daemon end to end: real RTSP server, real file, real Redis, real processes, scraped /metrics.

One daemon serves the tests of this module: three working cameras (two RTSP,
one file) plus one that is unreachable from the start. The tests break things
one at a time (the RTSP server goes away and comes back, the inference worker is
SIGKILLed, SIGTERM must stop everything within 5 s), so each test asks the
``daemon`` fixture for it: a daemon with its RTSP server up, its model loaded and
every working camera classifying, started afresh when an earlier test stopped
it. Every test passes alone and in any order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_fixtures import FER_STREAM, REPO, Metrics, http_get, pid_alive, process_title, stop_process, wait_for
from redis_fixtures import RedisServer, free_port, subprocess_env
from rtsp_fixtures import RtspServer

pytestmark = pytest.mark.slow

SHIPPED_MODEL = REPO / "models" / "DEFAULT"
WORKING = ("angry", "calm", "smile")


def _model_available() -> bool:
    return bool(os.environ.get("FER_STREAM_MODEL")) or SHIPPED_MODEL.is_file()


if not _model_available():
    pytest.skip("no model: ship one into models/ (models/DEFAULT) or set FER_STREAM_MODEL", allow_module_level=True)


class Daemon:
    def __init__(self, process: subprocess.Popen, url: str, rtsp: RtspServer, log: Path) -> None:
        self.process, self.url, self.rtsp, self.log = process, url, rtsp, log

    def metrics(self) -> Metrics:
        code, body = http_get(self.url + "/metrics")
        assert code == 200, f"/metrics answered {code}; daemon log: {self.log}"
        return Metrics(body.decode())

    def status(self) -> dict:
        code, body = http_get(self.url + "/status")
        assert code == 200
        return json.loads(body)

    def metrics_when(self, predicate):
        """A poll condition: the current scrape if ``predicate(scrape)`` holds, else None."""

        def check():
            m = self.metrics()
            return m if predicate(m) else None

        return check

    def camera_pids(self) -> dict[str, int]:
        pids = self.status()["pids"]
        return {name: pids[f"camera-{name}"] for name in WORKING}

    def ready(self) -> bool:
        """The model is loaded, every working camera and the inference worker run, and each camera is up and classifying."""
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
        if http_get(self.url + "/healthz")[0] != 200:
            return False
        status, m = self.status(), self.metrics()
        workers = ["inference", *(f"camera-{name}" for name in WORKING)]
        return (status["model"] is not None and all(status["pids"].get(worker) for worker in workers)
                and all(m.value("fer_camera_up", camera=c) == 1 and m.value("fer_faces_classified_total", camera=c) > 0
                        for c in WORKING))  # fmt: skip


class Site:
    """What the daemon runs against (Redis, the RTSP server, its config), and the daemon itself once started."""

    def __init__(self, tmp: Path, media_dir: Path, yunet_model: Path) -> None:
        self.tmp = tmp
        self.redis = RedisServer(tmp)
        self.rtsp = RtspServer({"angry": media_dir / "angry_man.mp4", "calm": media_dir / "calm_woman.mp4"})
        self.port = free_port()
        self.config = tmp / "cameras.yaml"
        self.config.write_text(f"""
detector:
  backend: yunet
  model_path: {yunet_model}
inference:
  max_batch_size: 16
  max_wait_ms: 40
http:
  host: 127.0.0.1
  port: {self.port}
redis:
  url: {self.redis.url}
cameras:
  - name: angry
    source: {self.rtsp.url("angry")}
    fps: 8
    stall_timeout_s: 2
    reconnect_initial_s: 0.5
    reconnect_max_s: 2
  - name: calm
    source: {self.rtsp.url("calm")}
    fps: 8
    stall_timeout_s: 2
  - name: smile
    source: {media_dir / "smiling_woman_phone.mp4"}
    loop: true
    fps: 8
  - name: ghost
    source: rtsp://127.0.0.1:{free_port()}/nobody-home
    open_timeout_s: 2
    reconnect_initial_s: 0.5
    reconnect_max_s: 2
""")
        self.daemon: Daemon | None = None
        self.starts = 0

    def ready_daemon(self) -> Daemon:
        """The running daemon, or a new one if none runs; with the RTSP server up, once the daemon is ready."""
        if not self.rtsp.running:
            self.rtsp.start()
        if self.daemon is None or self.daemon.process.poll() is not None:
            self.starts += 1
            log = self.tmp / f"daemon-{self.starts}.log"
            env = subprocess_env()
            env.pop("FER_STREAM_REDIS_URL", None)
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            with open(log, "w") as out:
                process = subprocess.Popen([FER_STREAM, "run", "--config", str(self.config)], stdout=out,
                                           stderr=subprocess.STDOUT, env=env)  # fmt: skip
            self.daemon = Daemon(process, f"http://127.0.0.1:{self.port}", self.rtsp, log)
        wait_for("the daemon ready: model loaded, every working camera up and classifying", self.daemon.ready, timeout=180)
        return self.daemon

    def stop(self) -> None:
        if self.daemon is not None:
            stop_process(self.daemon.process)
        self.rtsp.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, media_dir: Path, yunet_model: Path, _gstreamer: None) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("daemon"), media_dir, yunet_model)
    site.redis.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def daemon(site: Site) -> Daemon:
    return site.ready_daemon()


def test_frames_faces_and_batches_flow_for_every_camera(daemon: Daemon) -> None:
    def all_classified():
        m = daemon.metrics()
        return m if all(m.value("fer_faces_classified_total", camera=c) >= 5 for c in WORKING) else None

    first = wait_for("faces classified on every working camera", all_classified, timeout=120)
    for camera in WORKING:
        assert first.value("fer_camera_frames_read_total", camera=camera) > 0
        assert first.value("fer_camera_frames_processed_total", camera=camera) > 0
        assert first.value("fer_faces_detected_total", camera=camera) > 0
        assert first.value("fer_detection_seconds_count", camera=camera) > 0
        assert first.value("fer_end_to_end_latency_seconds_count", camera=camera) > 0
        assert first.value("fer_end_to_end_latency_seconds_sum", camera=camera) > 0
        assert first.value("fer_camera_up", camera=camera) == 1
    assert first.value("fer_model_loaded") == 1
    assert first.value("fer_inference_batch_seconds_count") > 0

    # Counters keep moving, per camera.
    later = wait_for(
        "per-camera counters to move",
        daemon.metrics_when(lambda m: all(
            m.value("fer_camera_frames_processed_total", camera=c) > first.value("fer_camera_frames_processed_total", camera=c)
            for c in WORKING
        )),
        timeout=60,
    )
    assert later.value("fer_faces_classified_total") > first.value("fer_faces_classified_total")

    # Faces from several cameras share batches.
    def batches_over_one():
        m = daemon.metrics()
        return m.value("fer_inference_batch_size_count") - m.value("fer_inference_batch_size_bucket", le="1.0") > 0

    wait_for("an inference batch with more than one face", batches_over_one, timeout=60)

    code, body = http_get(daemon.url + "/readyz")
    assert code == 200, body
    assert json.loads(body)["ready"] is True

    pids = daemon.status()["pids"]
    assert "fer-stream: inference" in process_title(pids["inference"])
    for camera in WORKING:
        assert f"fer-stream: camera {camera}" in process_title(pids[f"camera-{camera}"])
    assert "fer-stream: supervisor" in process_title(daemon.process.pid)


def test_live_view_serves_annotated_frames(daemon: Daemon) -> None:
    code, body = http_get(daemon.url + "/")
    assert code == 200 and b"cameras/" in body
    # The first request says someone is watching; cameras then start sending JPEGs.
    def jpeg_served():
        code, body = http_get(daemon.url + "/cameras/smile.jpg")
        return body if code == 200 else None

    jpeg = wait_for("a live-view JPEG", jpeg_served, timeout=30)
    assert jpeg[:2] == b"\xff\xd8"


def test_unreachable_camera_stays_down_without_stopping_the_others(daemon: Daemon) -> None:
    m = wait_for("reconnect attempts on the unreachable camera",
                 daemon.metrics_when(lambda m: m.value("fer_camera_reconnects_total", camera="ghost") >= 1), timeout=60)
    assert m.value("fer_camera_up", camera="ghost") == 0
    assert daemon.status()["cameras"]["ghost"]["up"] is False
    assert all(m.value("fer_camera_up", camera=c) == 1 for c in WORKING)
    assert daemon.process.poll() is None


def test_rtsp_outage_marks_the_camera_down_and_it_comes_back(daemon: Daemon) -> None:
    pids = daemon.camera_pids()
    before = daemon.metrics()
    daemon.rtsp.stop()
    down = wait_for("camera angry reported down",
                    daemon.metrics_when(lambda m: m.value("fer_camera_up", camera="angry") == 0), timeout=60)
    assert down.value("fer_camera_up", camera="smile") == 1  # the file camera does not care
    smile_frames = down.value("fer_camera_frames_processed_total", camera="smile")
    daemon.rtsp.start()
    up = wait_for("camera angry back up and processing",
                  daemon.metrics_when(lambda m: m.value("fer_camera_up", camera="angry") == 1
                                      and m.value("fer_camera_frames_processed_total", camera="angry")
                                      > down.value("fer_camera_frames_processed_total", camera="angry")), timeout=90)
    assert up.value("fer_camera_reconnects_total", camera="angry") > before.value("fer_camera_reconnects_total", camera="angry")
    assert up.value("fer_camera_stalls_total", camera="angry") > before.value("fer_camera_stalls_total", camera="angry")
    assert up.value("fer_camera_frames_processed_total", camera="smile") > smile_frames
    assert daemon.camera_pids() == pids, "a camera process was replaced"
    assert daemon.process.poll() is None


def test_killed_inference_worker_is_restarted_and_classification_resumes(daemon: Daemon) -> None:
    camera_pids = daemon.camera_pids()
    old = daemon.status()["pids"]["inference"]
    restarts = daemon.metrics().value("fer_worker_restarts_total", worker="inference")
    os.kill(old, signal.SIGKILL)
    def new_pid():
        pid = daemon.status()["pids"].get("inference")
        return pid if pid not in (None, old) else None

    new = wait_for("a new inference worker", new_pid, timeout=60)
    m = wait_for("the restart counted",
                 daemon.metrics_when(lambda m: m.value("fer_worker_restarts_total", worker="inference") > restarts), timeout=30)
    wait_for("model loaded again", lambda: daemon.status()["model"] is not None, timeout=60)
    classified = m.value("fer_faces_classified_total")
    wait_for("classification resumed",
             lambda: daemon.metrics().value("fer_faces_classified_total") > classified + 5, timeout=60)
    assert pid_alive(new)
    assert daemon.camera_pids() == camera_pids, "a camera process died with the inference worker"
    assert all(pid_alive(p) for p in camera_pids.values())


def test_majority_prediction_per_video(daemon: Daemon) -> None:
    if os.environ.get("FER_STREAM_MODEL") or not SHIPPED_MODEL.is_file():
        pytest.skip("accuracy needs the shipped model (models/DEFAULT); a development model was configured")
    # A whole pass of each video (angry_man.mp4: 15.6 s, smiling_woman_phone.mp4: 4.7 s, at 8 fps), wherever it began.
    predictions = wait_for("a whole pass of each video classified", daemon.metrics_when(
        lambda m: m.value("fer_predictions_total", camera="angry") >= 130 and m.value("fer_predictions_total", camera="smile") >= 40
    ), timeout=180)  # fmt: skip
    angry = predictions.by_label("fer_predictions_total", "emotion", camera="angry")
    smile = predictions.by_label("fer_predictions_total", "emotion", camera="smile")
    assert max(angry, key=angry.get) == "angry", angry
    assert max(smile, key=smile.get) == "happy", smile


def test_sigterm_stops_everything_within_5_s(daemon: Daemon) -> None:
    pids = [p for p in daemon.status()["pids"].values() if p]
    assert len(pids) >= 4
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    code = daemon.process.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert code == 0, daemon.log.read_text()[-3000:]
    assert elapsed < 5.0, f"shutdown took {elapsed:.1f} s"
    leftovers = [p for p in pids if pid_alive(p)]
    assert not leftovers, f"orphan processes: {leftovers}"
