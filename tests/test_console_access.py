"""Access control on the running daemon: beyond loopback it needs a token, and then every page, stream,
picture and API call does, while probes and scrapes stay open; the token is never written anywhere."""

from __future__ import annotations

import http.client
import json

import pytest
from daemon_fixtures import Daemon, camera, camera_yaml, http_get, refused, wait_for
from redis_fixtures import RedisServer, redis_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

TOKEN = "console-token-for-the-test-0123456789"


def test_bound_beyond_loopback_without_a_token_the_daemon_refuses_to_start(media_dir, tmp_path):
    refused(camera_yaml(media_dir, "http: {host: 0.0.0.0}"), tmp_path, "FER_STREAM_CONSOLE_TOKEN")
    refused(camera_yaml(media_dir, "http: {host: 0.0.0.0, token_env: GATE_TOKEN}"), tmp_path, "GATE_TOKEN")
    refused(camera_yaml(media_dir, "http: {host: 0.0.0.0}"), tmp_path, "at least 16", FER_STREAM_CONSOLE_TOKEN="short")


def test_a_snapshot_directory_that_cannot_be_written_is_refused_at_start(media_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    refused(camera_yaml(media_dir, f"alerts: {{snapshots: {{directory: {blocker / 'snapshots'}}}}}"), tmp_path,
            "alerts.snapshots.directory")



def test_with_a_token_everything_but_the_probes_answers_401_without_it(tmp_path, redis_server, media_dir, yunet_model):
    redis = redis_server
    extra = f"alerts:\n  snapshots:\n    directory: {tmp_path / 'snapshots'}\n"
    daemon = Daemon(tmp_path, redis, camera("angry-man", media_dir / "angry_man.mp4", loop=True), yunet_model,
                    extra=extra, env={"FER_STREAM_CONSOLE_TOKEN": TOKEN}, host="0.0.0.0")
    try:
        wait_for("an angry start in Redis", lambda: [
            json.loads(f[b"alert"]) for _, f in redis.client().xrange("fer:alerts:log")], timeout=60)  # fmt: skip
        start = json.loads(redis.client().xrange("fer:alerts:log")[0][1][b"alert"])
        paths = ["/", "/cameras/angry-man", "/cameras/angry-man.jpg", "/status", "/api/alerts", "/api/alerts/live",
                 "/api/cameras/angry-man/scores", "/cameras/angry-man/live.mjpeg", start["snapshot"]["frame"],
                 start["snapshot"]["face"], "/static/console.js"]
        for path in paths:
            assert http_get(daemon.url + path)[0] == 401, path
            assert http_get(daemon.url + path, token="not-the-token-0123456789")[0] == 401, path
        for path in paths:
            if path.endswith(("/live", ".mjpeg")):
                connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
                connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert connection.getresponse().status == 200, path
                connection.close()
            elif path != "/cameras/angry-man.jpg":  # 503 until a frame was asked for: checked below
                assert http_get(daemon.url + path, token=TOKEN)[0] == 200, path
        wait_for("a single live frame", lambda: http_get(daemon.url + "/cameras/angry-man.jpg", token=TOKEN)[0] == 200, timeout=20)
        code, body = http_get(daemon.url + start["snapshot"]["frame"], token=TOKEN)
        assert code == 200 and body[:2] == b"\xff\xd8"
        for path in ("/healthz", "/readyz", "/metrics"):
            assert http_get(daemon.url + path)[0] == 200, path
    finally:
        daemon.stop()
    assert TOKEN not in daemon.log.read_text()
