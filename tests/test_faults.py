"""Faults the daemon must survive, done to a real daemon: hung workers, bad configs, signals, churn, secrets.

One daemon (four looping file cameras, a 3 s watchdog) is shared by the hung-worker
and churn tests; the config, signal and secret tests start their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from daemon_fixtures import FER_STREAM, Metrics, camera_yaml, http_get, pid_alive, refused, stop_process, wait_for
from disk_fixtures import TinyDisk, tiny_disk  # noqa: F401  (fixture)
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


REDIS_SECRET = "S3cretPart#tail"


@pytest.mark.parametrize("command", [["check-config"], ["check-config", "--json"], ["run", "--config"],
                                     ["run", "--config", "FER_STREAM_REDIS_URL"]])  # fmt: skip
def test_a_redis_password_cut_short_by_a_delimiter_is_not_quoted_back(media_dir, tmp_path, command):
    """urllib reads the password up to its ``#`` as the port and says so; every command refuses the URL without it."""
    config = tmp_path / "cameras.yaml"
    env = {**subprocess_env(), "RPW": REDIS_SECRET}
    env.pop("FER_STREAM_REDIS_URL", None)
    if command[-1] == "FER_STREAM_REDIS_URL":
        command, env["FER_STREAM_REDIS_URL"] = command[:-1], f"redis://:{REDIS_SECRET}@127.0.0.1:6392/0"
        config.write_text(camera_yaml(media_dir))
    else:
        config.write_text(camera_yaml(media_dir, 'redis: {url: "redis://:${RPW}@127.0.0.1:6392/0"}'))
    done = subprocess.run([FER_STREAM, *command, str(config)], capture_output=True, text=True, timeout=60, env=env)
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "url: malformed Redis URL 'redis://:***@127.0.0.1:6392/0'" in said, said
    for fragment in ("S3cretPart", "tail"):
        assert fragment not in said, f"{fragment!r} in the output of {command}: {said}"


def test_fer_stream_alerts_does_not_quote_a_redis_password_back():
    env = {**subprocess_env(), "FER_STREAM_REDIS_URL": f"redis://:{REDIS_SECRET}@127.0.0.1:6392/0"}
    done = subprocess.run([FER_STREAM, "alerts", "--timeout", "1"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "S3cretPart" not in done.stdout + done.stderr


@pytest.mark.parametrize("content", [b"", os.urandom(4096)], ids=["empty", "random bytes"])
def test_a_file_that_is_not_a_video_is_refused_at_start(media_dir, tmp_path, content):
    garbage = tmp_path / "lobby.mp4"
    garbage.write_bytes(content)
    config = camera_yaml(media_dir, camera_extra=f"  - {{name: lobby, source: {garbage}}}")
    refused(config, tmp_path, f"cameras[1].source: camera lobby: {garbage} is not a video FFmpeg can decode")


def test_a_still_picture_and_a_played_file_read_as_finished(media_dir, yunet_model, tmp_path):
    """Not "starting" for ever, nor "silent" once the camera's process has gone: /status says what happened."""
    from fer_stream.daemon_state import STATUS_STALE_S

    port = free_port()
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
detector: {{model_path: {yunet_model}}}
alerts: {{enabled: false}}
http: {{port: {port}}}
cameras:
  - {{name: still, source: {media_dir / "one_face.jpg"}}}
  - {{name: clip, source: {media_dir / "smiling_woman_phone.mp4"}}}
  - {{name: door, source: {media_dir / "angry_man.mp4"}, loop: true, fps: 2}}
""")
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log)

    def cameras() -> dict | None:
        code, body = http_get(f"http://127.0.0.1:{port}/status")
        return json.loads(body)["cameras"] if code == 200 else None

    try:
        wait_for("both files to finish", lambda: (c := cameras()) and c["still"]["state"] == c["clip"]["state"] == "finished",
                 timeout=90)  # fmt: skip
        time.sleep(STATUS_STALE_S + 1)  # past the moment a camera that stopped reporting turns "silent"
        final = cameras()
    finally:
        stop_process(process)
    assert final is not None, log.read_text()[-2000:]
    assert final["still"]["state"] == "finished" and "a still picture" in final["still"]["reason"], final["still"]
    assert final["clip"]["state"] == "finished" and final["clip"]["reason"].startswith("end of file ("), final["clip"]


def test_six_hundred_idle_connections_leave_probes_and_token_holders_served(tmp_path):
    """Sockets that never send a request (no token needed) must not lock anyone out of HTTP."""
    from fer_stream.daemon_state import DaemonState
    from fer_stream.http.access import Access
    from fer_stream.http.server import start_http_server

    token = "console-token-for-the-test-0123456789"
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(limits[0], min(4096, limits[1])), limits[1]))  # 600 sockets each side
    server = start_http_server("127.0.0.1", 0, DaemonState(["door"]), str(tmp_path), threading.Lock(), access=Access(token))
    idle: list[socket.socket] = []
    try:
        for _ in range(600):
            idle.append(socket.create_connection(server.sock.getsockname()[:2], timeout=5))
        time.sleep(3)  # the lockout used to set in within seconds and last while the sockets stayed open
        for path, credential in (("/healthz", None), ("/metrics", None), ("/status", token)):
            started = time.monotonic()
            code, _ = http_get(server.url + path, timeout=5, token=credential)
            assert (code, path) == (200, path) and time.monotonic() - started < 1.0, (path, time.monotonic() - started)
    finally:
        for connection in idle:
            connection.close()
        server.shutdown()
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


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


def test_a_full_disk_under_the_alert_journal_keeps_the_daemon_up_and_loses_no_alert(media_dir, yunet_model, tmp_path,
                                                                                      tiny_disk: TinyDisk):  # fmt: skip
    """The journal's disk fills after the first alert: alerts wait in memory, go back into the journal when space
    returns, and reach Redis when it answers, with the disk full again; the cameras never stop."""
    redis_server = RedisServer(tmp_path)  # not started: Redis is down
    port = free_port()
    journal = tiny_disk.path / "outbox.sqlite3"
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
detector: {{model_path: {yunet_model}}}
http: {{port: {port}}}
redis: {{url: {redis_server.url}, connect_timeout_s: 0.5, socket_timeout_s: 0.5}}
alerts: {{outbox_path: {journal}, rules: {{update_every_s: 1, cooldown_s: 0}}}}
cameras:
  - {{name: angry, source: {media_dir / "angry_man.mp4"}, loop: true, fps: 8}}
""")
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"

    def metrics() -> Metrics:
        assert process.poll() is None, f"the daemon exited with {process.returncode}: {log.read_text()[-3000:]}"
        return Metrics(http_get(url + "/metrics")[1].decode())

    def forwarded() -> int:
        """Alerts the supervisor handed to the publisher so far."""
        return json.loads(http_get(url + "/status")[1])["alerts_forwarded"]

    def forwarded_ids() -> list[str]:
        """Their ids, oldest first: the console keeps them while Redis is away."""
        page = json.loads(http_get(url + "/api/alerts?limit=200")[1])
        assert page["source"] == "memory", page
        return [event["alert"]["alert_id"] for event in reversed(page["events"])]

    process = start_daemon(config, log)
    try:
        wait_for("the first alert in the journal", lambda: http_get(url + "/healthz")[0] == 200
                 and metrics().value("fer_alert_outbox_depth") >= 1, timeout=120)  # fmt: skip
        tiny_disk.fill()
        at_fill = forwarded()
        wait_for("three more alerts held in memory", lambda: metrics().value("fer_alert_journal_degraded") == 1
                 and forwarded() >= at_fill + 3, timeout=60)  # fmt: skip
        m = metrics()
        assert m.value("fer_alert_journal_write_errors_total") >= 1
        assert m.value("fer_worker_restarts_total") == 0 and m.value("fer_alert_outbox_dropped_total") == 0
        processed = m.value("fer_camera_frames_processed_total", camera="angry")
        wait_for("the camera still processing", lambda: metrics().value(
            "fer_camera_frames_processed_total", camera="angry") > processed + 10, timeout=30)  # fmt: skip

        tiny_disk.free()
        wait_for("the journal written again", lambda: metrics().value("fer_alert_journal_degraded") == 0, timeout=30)
        held = forwarded_ids()
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            journaled = [json.loads(text)["alert_id"] for (text,) in db.execute("SELECT alert FROM outbox ORDER BY seq")]
        assert journaled[: len(held)] == held, "every alert so far, in order, is in the journal"

        tiny_disk.fill()
        redis_server.start()
        at_redis = forwarded()
        wait_for("alerts delivered while the disk is full", lambda: metrics().value("fer_alert_journal_degraded") == 1
                 and len(alerts_in(redis_server)) == forwarded() >= at_redis + 3, timeout=90)  # fmt: skip
        code, elapsed = signalled(process, signal.SIGTERM)
        delivered = [a["alert_id"] for a in alerts_in(redis_server)]
    finally:
        stop_process(process)
        redis_server.stop()
    assert code == 0 and elapsed < 5.0, f"exit {code} after {elapsed:.1f} s: {log.read_text()[-3000:]}"
    assert len(delivered) == len(set(delivered)), "an alert was added to the stream twice"
    assert delivered[: len(held)] == held, "the alerts held through the full disk arrive first, in order"
    assert "alert journal" in log.read_text() and "cannot be written (database or disk is full)" in log.read_text()
