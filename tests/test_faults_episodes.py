"""Every alert episode ends, whatever stops it: done to a real daemon, with real Redis and a real RTSP camera.

1. A camera's alert queue: its writer killed in the middle of a message leaves the reader every whole
   message before it, and no wait for the rest.
2. SIGTERM while two HD cameras are inside episodes: the daemon is gone within 5 s and every start has its
   end (``daemon_stopped`` for the episodes open at the signal), in Redis when it answers and in the journal
   when it does not. Each end comes with a 1280x720 picture, far more than a pipe holds at once.
3. A camera lost mid-episode (its RTSP stream stalls, or its looping file is deleted) ends the episode
   (``camera_stopped``) within ``stall_timeout_s`` + 1 s of the face's last sighting, and ``/status`` no
   longer shows the face alerting while the camera is down.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from daemon_fixtures import http_get, pid_alive, stop_process, wait_for
from redis_fixtures import RedisServer, free_port
from test_faults import alerts_in, signalled, start_daemon

from fer_stream.queues import BoundedQueue

pytestmark = pytest.mark.slow

HD = (1280, 720)
STALL_TIMEOUT_S = 2.0


def _write_and_hang(alerts: BoundedQueue) -> None:
    alerts.put(b"whole")
    alerts.put(b"x" * 1_000_000)  # far more than a pipe holds: the writer waits for the reader in the middle
    time.sleep(60)


def test_a_writer_killed_mid_message_leaves_the_whole_messages_and_no_wait() -> None:
    ctx = multiprocessing.get_context("spawn")
    alerts: BoundedQueue = BoundedQueue(ctx, "alerts-test", 16)
    writer = ctx.Process(target=_write_and_hang, args=(alerts,), daemon=True)
    writer.start()
    alerts.reader_only()  # as the supervisor does once a camera worker started
    try:
        received = wait_for("the first message", lambda: alerts.wait(0.5) and alerts.drain(1), timeout=30)
        assert received == [b"whole"]
        assert alerts.wait(10), "the second message is on its way"
        time.sleep(0.5)  # a pipe's worth of it written, the writer waiting for the rest to be read
    finally:
        writer.kill()
        writer.join(10)
    rest: list = []
    reader = threading.Thread(target=lambda: rest.append(alerts.drain(16)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "the reader waits forever for the rest of a message its writer died writing"
    assert rest == [[]]


@pytest.fixture(scope="module")
def angry_hd(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Path:
    """angry_man.mp4 scaled to 1280x720 (OpenCV's FFmpeg) over a fixed grain: a picture of one of its frames
    is about 200 KB, several times what a pipe holds."""
    import cv2
    import numpy as np

    out = tmp_path_factory.mktemp("hd") / "angry_man_720p.mp4"
    grain = np.random.default_rng(0).integers(0, 256, (HD[1], HD[0], 3), dtype=np.uint8)
    reader = cv2.VideoCapture(str(media_dir / "angry_man.mp4"))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), reader.get(cv2.CAP_PROP_FPS), HD)
    try:
        while True:
            ok, frame = reader.read()
            if not ok:
                break
            writer.write(cv2.addWeighted(cv2.resize(frame, HD, interpolation=cv2.INTER_LINEAR), 0.85, grain, 0.15, 0))
    finally:
        reader.release()
        writer.release()
    return out


def journal(config: Path) -> list[dict]:
    """The alerts waiting in the daemon's journal, read without consuming them."""
    from fer_stream.alerts.config import AlertsConfig

    path = AlertsConfig().journal_path(config)
    if path is None or not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [json.loads(text) for (text,) in db.execute("SELECT alert FROM outbox ORDER BY seq")]


def open_episodes(alerts: list[dict]) -> set[str]:
    ended = {a["episode_id"] for a in alerts if a["event"] == "end"}
    return {a["episode_id"] for a in alerts if a["event"] == "start"} - ended


@pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-down"])
def test_sigterm_inside_episodes_on_hd_cameras_ends_every_episode_within_5_s(redis_up, angry_hd, yunet_model, tmp_path):
    redis = RedisServer(tmp_path)
    if redis_up:
        redis.start()
    port = free_port()
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
detector: {{model_path: {yunet_model}}}
http: {{port: {port}}}
redis: {{url: {redis.url}, connect_timeout_s: 0.5, socket_timeout_s: 0.5}}
cameras:
  - {{name: door, source: {angry_hd}, loop: true, fps: 5}}
  - {{name: gate, source: {angry_hd}, loop: true, fps: 5}}
""")
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log)

    def delivered() -> list[dict]:
        return alerts_in(redis) if redis_up else journal(config)

    try:
        wait_for("an alert start on each camera", lambda: process.poll() is not None or {
            a["camera"] for a in delivered() if a["event"] == "start"} == {"door", "gate"}, timeout=120)  # fmt: skip
        assert process.poll() is None, log.read_text()[-3000:]
        open_at_signal = open_episodes(delivered())
        pids = [pid for pid in json.loads(http_get(f"http://127.0.0.1:{port}/status")[1])["pids"].values() if pid]
        code, elapsed = signalled(process, signal.SIGTERM)
    finally:
        stop_process(process)
        alerts = delivered()
        redis.stop()
    text = log.read_text()
    assert code == 0 and elapsed < 5.0, f"exit {code} after {elapsed:.1f} s: {text[-3000:]}"
    assert not [pid for pid in pids if pid_alive(pid)], "a child outlived the supervisor"
    assert open_at_signal, "the test needs episodes open at the signal"
    assert not open_episodes(alerts), f"starts without an end: {open_episodes(alerts)}; log: {text[-3000:]}"
    ends = {a["episode_id"]: a for a in alerts if a["event"] == "end"}
    assert {ends[e]["end_reason"] for e in open_at_signal} == {"daemon_stopped"}
    assert all(ends[e]["snapshot"] for e in open_at_signal), "the ends raised by the cameras carry their pictures"
    assert "they are lost" not in text


@pytest.mark.parametrize("loss", ["stalled", "file-deleted"])
def test_a_camera_lost_mid_episode_ends_it_within_stall_timeout_plus_1_s(loss, request, media_dir, yunet_model, tmp_path):
    """Stalled: the RTSP server is stopped with SIGSTOP, its connection stays open. File deleted: the camera
    cannot reopen its looping file when the pass it is reading ends."""
    if loss == "stalled":
        server = request.getfixturevalue("rtsp_server")({"angry": media_dir / "angry_man.mp4"})
        camera = f'{{name: door, source: "{server.url("angry")}", fps: 5, stall_timeout_s: {STALL_TIMEOUT_S}}}'
    else:
        video = tmp_path / "angry_man.mp4"
        shutil.copy(media_dir / "angry_man.mp4", video)
        camera = f"{{name: door, source: {video}, loop: true, fps: 5, stall_timeout_s: {STALL_TIMEOUT_S}}}"
    redis = RedisServer(tmp_path)
    redis.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
detector: {{model_path: {yunet_model}}}
http: {{port: {port}}}
redis: {{url: {redis.url}}}
cameras:
  - {camera}
""")
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log)
    stopped = False
    try:
        start = wait_for("an alert start", lambda: process.poll() is not None or next(
            (a for a in alerts_in(redis) if a["event"] == "start"), None), timeout=120)  # fmt: skip
        assert process.poll() is None, log.read_text()[-3000:]
        if loss == "stalled":
            os.kill(server.process.pid, signal.SIGSTOP)
            stopped = True
        else:
            video.unlink()

        def ended() -> tuple[str, dict] | None:
            entries = redis.client().xrange("fer:alerts:log")
            return next(((entry_id.decode(), alert) for entry_id, fields in entries
                         if (alert := json.loads(fields[b"alert"]))["event"] == "end"
                         and alert["episode_id"] == start["episode_id"]), None)  # fmt: skip

        # A deleted file is read to the end of the pass already open (the clip is 15.6 s long).
        entry_id, end = wait_for("the episode's end", ended, timeout=STALL_TIMEOUT_S + 30, every=0.1)

        def down_and_calm() -> bool:
            camera = json.loads(http_get(url + "/status")[1])["cameras"]["door"]
            return not camera["up"] and not [t for t in camera["tracks"] if t["alerting"]]

        wait_for("/status to show the camera down and no face alerting", down_and_calm, timeout=5, every=0.2)
    finally:
        if stopped:
            os.kill(server.process.pid, signal.SIGCONT)
        stop_process(process)
        redis.stop()
    added_at = int(entry_id.split("-")[0]) / 1000  # Redis stream ids are the time of the XADD, in ms
    last_seen = datetime.fromisoformat(end["event_at"].replace("Z", "+00:00")).timestamp()
    assert end["end_reason"] == "camera_stopped", end
    assert added_at - last_seen <= STALL_TIMEOUT_S + 1.0, f"ended {added_at - last_seen:.1f} s after the last sighting"
