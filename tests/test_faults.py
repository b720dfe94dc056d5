"""Faults the daemon must survive, done to a real daemon: hung workers, bad configs, signals, churn, secrets.

One daemon (four looping file cameras, a 3 s watchdog) is shared by the hung-worker
and churn tests; the config, signal and secret tests start their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from daemon_fixtures import FER_STREAM, Metrics, camera_yaml, http_get, pid_alive, refused, stop_process, wait_for
from redis_fixtures import RedisServer, free_port, subprocess_env

pytestmark = pytest.mark.slow

SECRET = "p/#?@%:w0rd"


def start_daemon(config: Path, log: Path, **env: str) -> subprocess.Popen:
    environment = subprocess_env()
    environment.pop("FER_STREAM_REDIS_URL", None)
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update(env)
    with open(log, "w") as out:
        return subprocess.Popen([FER_STREAM, "run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                env=environment)  # fmt: skip


def signalled(process: subprocess.Popen, sig: int) -> tuple[int, float]:
    """Send ``sig``; the exit code and the seconds until the process was gone."""
    started = time.monotonic()
    process.send_signal(sig)
    code = process.wait(timeout=30)
    return code, time.monotonic() - started


class Daemon:
    def __init__(self, process: subprocess.Popen, url: str, log: Path, metrics_dir: Path) -> None:
        self.process, self.url, self.log, self.metrics_dir = process, url, log, metrics_dir

    def status(self) -> dict:
        code, body = http_get(self.url + "/status")
        assert code == 200, f"/status answered {code}; log: {self.log.read_text()[-2000:]}"
        return json.loads(body)

    def metrics(self) -> Metrics:
        code, body = http_get(self.url + "/metrics")
        assert code == 200, f"/metrics answered {code}"
        return Metrics(body.decode())

    def pid(self, worker: str) -> int | None:
        return self.status()["pids"].get(worker)

    def replaced(self, worker: str, old: int):
        def check():
            pid = self.pid(worker)
            return pid if pid not in (None, old) else None

        return check


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, media_dir: Path, yunet_model: Path):
    tmp = tmp_path_factory.mktemp("faults")
    port = free_port()
    config = tmp / "cameras.yaml"
    config.write_text(f"""
detector: {{backend: yunet, model_path: {yunet_model}}}
watchdog: {{stall_s: 3}}
alerts: {{enabled: false}}
http: {{host: 127.0.0.1, port: {port}}}
cameras:
  - {{name: angry, source: {media_dir / "angry_man.mp4"}, loop: true, fps: 4}}
  - {{name: calm, source: {media_dir / "calm_woman.mp4"}, loop: true, fps: 4}}
  - {{name: angry2, source: {media_dir / "angry_man.mp4"}, loop: true, fps: 2}}
  - {{name: smile, source: {media_dir / "smiling_woman_phone.mp4"}, loop: true, fps: 2}}
""")
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    log = tmp / "daemon.log"
    process = start_daemon(config, log, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    d = Daemon(process, f"http://127.0.0.1:{port}", log, metrics_dir)
    try:
        wait_for("the daemon to be ready", lambda: process.poll() is not None or http_get(d.url + "/readyz")[0] == 200,
                 timeout=90)  # fmt: skip
        assert process.poll() is None, log.read_text()[-3000:]
        yield d
    finally:
        stop_process(process)


def test_a_stopped_inference_worker_is_reported_and_restarted(daemon: Daemon) -> None:
    old = daemon.pid("inference")
    classified = daemon.metrics().value("fer_faces_classified_total")
    os.kill(old, signal.SIGSTOP)
    try:
        def stalled_named():
            code, body = http_get(daemon.url + "/readyz")
            return body if code == 503 and b"inference" in body else None

        body = wait_for("/readyz to name the stalled worker", stalled_named, timeout=20, every=0.2)
        assert json.loads(body)["reason"].startswith("worker(s) stalled")
        new = wait_for("a new inference worker", daemon.replaced("inference", old), timeout=30)
    finally:
        if pid_alive(old):
            os.kill(old, signal.SIGCONT)
    assert not pid_alive(old)
    wait_for("the model loaded again", lambda: daemon.status()["model"] is not None, timeout=60)
    wait_for("classification resumed", lambda: daemon.metrics().value("fer_faces_classified_total") > classified + 5,
             timeout=60)  # fmt: skip
    m = daemon.metrics()
    assert m.value("fer_worker_restarts_total", worker="inference") >= 1
    assert m.value("fer_worker_stalled", worker="inference") == 0, "the replacement is not stalled"
    assert pid_alive(new)
    assert "inference (pid" in daemon.log.read_text() and "made no progress" in daemon.log.read_text()


def test_a_stopped_camera_worker_is_restarted_and_processes_again(daemon: Daemon) -> None:
    old = daemon.pid("camera-calm")
    os.kill(old, signal.SIGSTOP)
    try:
        new = wait_for("a new calm camera worker", daemon.replaced("camera-calm", old), timeout=30)
    finally:
        if pid_alive(old):
            os.kill(old, signal.SIGCONT)
    processed = daemon.metrics().value("fer_camera_frames_processed_total", camera="calm")
    wait_for("the calm camera processing again", lambda: daemon.metrics().value(
        "fer_camera_frames_processed_total", camera="calm") > processed + 5, timeout=60)  # fmt: skip
    wait_for("the calm camera up", lambda: daemon.status()["cameras"]["calm"]["up"], timeout=30)
    assert pid_alive(new) and daemon.metrics().value("fer_worker_restarts_total", worker="camera-calm") >= 1


def test_twenty_child_deaths_under_continuous_scraping(daemon: Daemon) -> None:
    def files() -> int:
        return len(list(daemon.metrics_dir.glob("*.db")))

    before = files()
    failures: list[str] = []
    scrapes = 0
    done = threading.Event()

    def scrape() -> None:
        nonlocal scrapes
        while not done.is_set():
            code, _ = http_get(daemon.url + "/metrics", timeout=10)
            scrapes += 1
            if code != 200:
                failures.append(f"/metrics answered {code}")

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        workers = ["camera-angry", "camera-calm", "camera-angry2", "camera-smile", "inference"]
        for round_ in range(4):  # 20 deaths; each worker's restart backoff grows, so kill them in turn
            killed = {}
            for worker in workers:
                killed[worker] = wait_for(f"{worker} running", lambda w=worker: daemon.pid(w), timeout=60)
                os.kill(killed[worker], signal.SIGKILL)
            for worker, old in killed.items():
                wait_for(f"{worker} replaced (round {round_ + 1})", daemon.replaced(worker, old), timeout=60)
    finally:
        done.set()
        scraper.join(15)
    assert scrapes > 20 and not failures, failures[:5]
    restarts = daemon.metrics().value("fer_worker_restarts_total")
    assert restarts >= 20
    assert files() <= before + 3, f"{files()} metric files after 20 deaths, {before} before: dead children's files pile up"


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """The shipped int8 file and its card in a folder of their own, to break."""
    from fer_stream.inference.engine import default_model_path

    source = default_model_path()
    folder = tmp_path / "model"
    folder.mkdir()
    for path in (source, source.with_name(source.name + ".card.json")):
        shutil.copy(path, folder / path.name)
    return folder / source.name


def test_a_label_the_model_does_not_have_is_refused_at_start(media_dir, tmp_path):
    refused(camera_yaml(media_dir, "alerts:\n  rules:\n    watched: [contempt]"), tmp_path, "alerts.rules: names contempt")
    refused(camera_yaml(media_dir, camera_extra="    alert_rules: {enter_threshold: {rage: 0.5}}"), tmp_path,
            "cameras[0].alert_rules: names rage")  # fmt: skip


def test_a_missing_or_wrong_detector_file_is_refused_at_start(media_dir, yunet_model, tmp_path):
    refused(camera_yaml(media_dir, f"detector: {{model_path: {tmp_path / 'nope.onnx'}}}"), tmp_path, "detector.model_path")
    refused(camera_yaml(media_dir, f"detector: {{model_path: {yunet_model}, model_sha256: '{'0' * 64}'}}"), tmp_path,
            "detector: detector.model_sha256")  # fmt: skip
    refused(camera_yaml(media_dir, f"detector: {{model_path: {yunet_model}, model_sha256: {'1' * 63}}}"), tmp_path,
            "detector.model_sha256: read as a number")  # fmt: skip
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a network")
    refused(camera_yaml(media_dir, f"detector: {{model_path: {junk}}}"), tmp_path, "OpenCV cannot load it as a YuNet")


def test_a_model_that_does_not_match_its_card_or_is_corrupt_is_refused_at_start(media_dir, model_copy, tmp_path):
    config = camera_yaml(media_dir, f"model: {{path: {model_copy}}}")
    card = model_copy.with_name(model_copy.name + ".card.json")
    original = card.read_bytes()
    card.write_bytes(original.replace(b'"input_size": 96', b'"input_size": 64'))
    refused(config, tmp_path, "model.path:")
    card.write_bytes(b"\x00\xff\xfe binary")
    refused(config, tmp_path, "not a valid fer-stream model card")
    card.write_bytes(original)
    model_copy.write_bytes(b"\x00" * 1000)  # a corrupt file whose card's digest no longer matches
    refused(config, tmp_path, "does not match its card")
    digest = hashlib.sha256(model_copy.read_bytes()).hexdigest()  # ... and one whose card was made to match
    card.write_text(json.dumps({**json.loads(original), "sha256": digest}))
    refused(config, tmp_path, "model.path:")


def test_settings_no_worker_could_run_are_refused_at_start(media_dir, tmp_path):
    refused(camera_yaml(media_dir, camera_extra="    enabled: false"), tmp_path, "every camera has enabled: false")
    refused(camera_yaml(media_dir, "inference: {request_queue_size: 99999999999}"), tmp_path,
            "inference.request_queue_size")  # fmt: skip
    bomb = "\n".join(['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
                     + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)])  # fmt: skip
    refused(bomb + "\ncameras: [*a6]\n", tmp_path, "expands to more than")


def test_sigterm_during_a_slow_model_load_exits_within_5_s(media_dir, yunet_model, tmp_path):
    """The TensorFlow backend takes seconds to import and load: the stop must not wait for it."""
    port = free_port()
    config = tmp_path / "cameras.yaml"
    config.write_text(camera_yaml(media_dir, f"model: {{backend: tensorflow}}\nalerts: {{enabled: false}}\n"
                                             f"http: {{port: {port}}}\ndetector: {{model_path: {yunet_model}}}"))  # fmt: skip
    process = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_for("the HTTP server", lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, timeout=30, every=0.1)
        assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 503, "the model is still loading"
        status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[1])
        code, elapsed = signalled(process, signal.SIGTERM)
    finally:
        stop_process(process)
    assert code == 0 and elapsed < 5.0, f"exit {code} after {elapsed:.1f} s"
    assert not [pid for pid in status["pids"].values() if pid and pid_alive(pid)], "a child outlived the supervisor"
    assert "camera-door" not in status["pids"], "no camera was started while the model loaded"


def test_sighup_stops_the_daemon_cleanly(media_dir, yunet_model, tmp_path):
    """SIGHUP (a closed terminal, a reload request) is a clean stop; the config is not reloaded in place."""
    port = free_port()
    config = tmp_path / "cameras.yaml"
    config.write_text(camera_yaml(media_dir, f"alerts: {{enabled: false}}\nhttp: {{port: {port}}}\n"
                                             f"detector: {{model_path: {yunet_model}}}", "    loop: true"))  # fmt: skip
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log)
    try:
        wait_for("ready", lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=90)
        pids = [pid for pid in json.loads(http_get(f"http://127.0.0.1:{port}/status")[1])["pids"].values() if pid]
        code, elapsed = signalled(process, signal.SIGHUP)
    finally:
        stop_process(process)
    assert code == 0 and elapsed < 5.0, f"exit {code} after {elapsed:.1f} s: {log.read_text()[-1500:]}"
    assert len(pids) == 2 and not [pid for pid in pids if pid_alive(pid)]
    assert "shutting down" in log.read_text()


def test_passwords_with_url_delimiters_never_leave_the_process(media_dir, yunet_model, tmp_path):
    port = free_port()
    config = tmp_path / "cameras.yaml"
    config.write_text(camera_yaml(media_dir, f"""
detector: {{model_path: {yunet_model}}}
alerts: {{enabled: false}}
http: {{port: {port}}}""", camera_extra=f"""    enabled: true
  - name: gate
    source: rtsp://viewer:${{GATE_PASSWORD}}@127.0.0.1:{free_port()}/live
    open_timeout_s: 1
  - name: yard
    source: rtsp://127.0.0.1:{free_port()}/live?user=viewer&password=${{GATE_PASSWORD}}
    open_timeout_s: 1
"""))
    env = {"GATE_PASSWORD": SECRET}
    checked = subprocess.run([FER_STREAM, "check-config", str(config)], capture_output=True, text=True, timeout=60,
                             env={**subprocess_env(), **env})  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "viewer:***@127.0.0.1" in checked.stdout and "password=***" in checked.stdout
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log, **env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the gate camera tried and failed", lambda: "gate" in log.read_text() and "yard" in log.read_text()
                 and http_get(url + "/status")[0] == 200, timeout=60)  # fmt: skip
        time.sleep(3)  # a few reconnect attempts
        pages = [http_get(url + path)[1].decode(errors="replace") for path in ("/status", "/metrics", "/", "/readyz")]
    finally:
        stop_process(process)
    for text, where in [(checked.stdout + checked.stderr, "check-config"), (log.read_text(), "the daemon log"),
                        *((page, "an HTTP page") for page in pages)]:  # fmt: skip
        for fragment in (SECRET, "p/#?@", "w0rd"):
            assert fragment not in text, f"{fragment!r} leaked into {where}"


def alerts_in(redis_server: RedisServer) -> list[dict]:
    return [json.loads(fields[b"alert"]) for _, fields in redis_server.client().xrange("fer:alerts:log")]


def angry_config(tmp_path: Path, media_dir: Path, yunet_model: Path, redis_server: RedisServer, port: int) -> Path:
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
detector: {{model_path: {yunet_model}}}
http: {{port: {port}}}
redis: {{url: {redis_server.url}, connect_timeout_s: 0.5, socket_timeout_s: 0.5}}
cameras:
  - {{name: angry, source: {media_dir / "angry_man.mp4"}, loop: true, fps: 8}}
""")
    return config


def test_alerts_held_while_redis_is_down_survive_a_killed_daemon_and_arrive_once(media_dir, yunet_model, tmp_path):
    from fer_stream.alerts.config import AlertsConfig

    redis_server = RedisServer(tmp_path)  # not started: Redis is down
    port = free_port()
    config = angry_config(tmp_path, media_dir, yunet_model, redis_server, port)
    url = f"http://127.0.0.1:{port}"
    first = start_daemon(config, tmp_path / "first.log")
    try:
        wait_for("an alert held in the outbox", lambda: Metrics(http_get(url + "/metrics")[1].decode()).value(
            "fer_alert_outbox_depth") >= 1 if http_get(url + "/healthz")[0] == 200 else None, timeout=90)  # fmt: skip
        first.kill()  # SIGKILL: no clean shutdown, nothing flushed by the daemon itself
        first.wait(10)
    finally:
        stop_process(first)
    journal = AlertsConfig().journal_path(config)
    with sqlite3.connect(journal) as db:  # read the journal without consuming it
        held = [json.loads(text)["alert_id"] for (text,) in db.execute("SELECT alert FROM outbox ORDER BY seq")]
    assert held, "the killed daemon's alerts are in its journal"

    redis_server.start()
    second = start_daemon(config, tmp_path / "second.log")
    try:
        wait_for("the held alerts delivered", lambda: set(held) <= {a["alert_id"] for a in alerts_in(redis_server)},
                 timeout=90)  # fmt: skip
        time.sleep(2)
    finally:
        stop_process(second)
        delivered = alerts_in(redis_server)
        redis_server.stop()
    ids = [a["alert_id"] for a in delivered]
    assert len(ids) == len(set(ids)), "an alert was added to the stream twice"
    assert [i for i in ids if i in held] == held, "the held alerts arrive in their order"


def test_a_camera_killed_mid_episode_does_not_start_it_again_inside_the_cooldown(media_dir, yunet_model, tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    port = free_port()
    config = angry_config(tmp_path, media_dir, yunet_model, redis_server, port)
    url = f"http://127.0.0.1:{port}"
    process = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_for("an angry start", lambda: [a for a in alerts_in(redis_server) if a["event"] == "start"], timeout=90)
        old = json.loads(http_get(url + "/status")[1])["pids"]["camera-angry"]
        os.kill(old, signal.SIGKILL)

        def replaced():
            pid = json.loads(http_get(url + "/status")[1])["pids"].get("camera-angry")
            return pid if pid not in (None, old) else None

        wait_for("a new angry camera worker", replaced, timeout=30)
        processed = Metrics(http_get(url + "/metrics")[1].decode()).value("fer_faces_classified_total")
        wait_for("the new worker classifying for a while", lambda: Metrics(http_get(url + "/metrics")[1].decode()).value(
            "fer_faces_classified_total") > processed + 60, timeout=90)  # fmt: skip
        tracks = json.loads(http_get(url + "/status")[1])["cameras"]["angry"]["tracks"]
    finally:
        stop_process(process)
        delivered = alerts_in(redis_server)
        redis_server.stop()
    starts = [a for a in delivered if a["event"] == "start"]
    ends = [a for a in delivered if a["event"] == "end"]
    assert len(starts) == 1, f"a second start inside the cooldown: {starts}"
    assert any(e["track_id"] == starts[0]["track_id"] for e in ends), "the orphaned episode was ended"
    assert all(t["track_id"] > starts[0]["track_id"] for t in tracks), "track ids are not reused after the restart"
