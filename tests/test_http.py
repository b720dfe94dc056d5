"""The HTTP routes, served from a real socket over a DaemonState (no child processes)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from fer_stream.daemon_state import STATUS_STALE_S, DaemonState
from fer_stream.http.server import start_http_server
from fer_stream.messages import CameraStatus, CameraView, ModelStatus, SourceState, TrackView


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.fixture
def served(tmp_path):
    state = DaemonState(["lobby", "door"])
    server = start_http_server("127.0.0.1", 0, state, str(tmp_path), threading.Lock())
    yield state, server.url
    server.shutdown()
    server.server_close()


def test_readyz_needs_the_model_and_a_live_camera(served) -> None:
    state, url = served
    assert get(url + "/healthz")[0] == 200
    code, ctype, body = get(url + "/readyz")
    assert (code, ctype) == (503, "application/json")
    assert "model not loaded" in json.loads(body)["reason"]

    state.set_model(ModelStatus(model_id="fer-mobilenet", version="1", backend="litert", labels=("angry", "happy"), pid=123))
    code, _, body = get(url + "/readyz")
    assert code == 503 and json.loads(body)["reason"] == "no camera is up"

    state.update_status(CameraStatus(camera="door", state=SourceState.UP, up=True, at=time.monotonic(), processed_fps=10.0))
    code, _, body = get(url + "/readyz")
    assert code == 200 and "door" in json.loads(body)["reason"]

    # A heartbeat that stopped coming does not keep the camera "up".
    state.update_status(CameraStatus(camera="door", state=SourceState.UP, up=True, at=time.monotonic() - STATUS_STALE_S - 1,
                                     processed_fps=10.0))
    assert get(url + "/readyz")[0] == 503


def test_status_and_live_view(served) -> None:
    state, url = served
    code, ctype, body = get(url + "/")
    assert code == 200 and ctype.startswith("text/html")
    assert b'id="img-lobby"' in body and b'id="img-door"' in body

    assert not state.viewers_present()
    assert get(url + "/cameras/lobby.jpg")[0] == 503  # asking is what makes cameras start sending
    assert state.viewers_present()
    import cv2

    jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    state.update_view(CameraView(camera="lobby", at=time.monotonic(), jpeg=jpeg))
    assert get(url + "/cameras/lobby.jpg") == (200, "image/jpeg", jpeg)
    assert get(url + "/cameras/nope.jpg")[0] == 404

    track = TrackView(track_id=3, box=(1, 2, 3, 4), emotion="angry", score=0.9, alerting=True)
    state.update_status(CameraStatus(camera="lobby", state=SourceState.UP, up=True, at=time.monotonic(), processed_fps=9.5,
                                     tracks=(track,)))
    status = json.loads(get(url + "/status")[2])
    expected = {"track_id": 3, "box": [1, 2, 3, 4], "emotion": "angry", "score": 0.9, "alerting": True}
    assert status["cameras"]["lobby"]["tracks"][0] == expected
    assert status["cameras"]["door"]["state"] == "starting"


def test_metrics_and_unknown_pages(served) -> None:
    _, url = served
    code, ctype, _ = get(url + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    code, _, body = get(url + "/nope")
    assert code == 404 and b"/metrics" in body


def test_busy_port_names_the_setting(served, tmp_path) -> None:
    state, url = served
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match="http.port"):
        start_http_server("127.0.0.1", port, state, str(tmp_path), threading.Lock())


def test_an_idle_half_sent_request_is_dropped_and_the_backlog_is_normal(tmp_path, monkeypatch) -> None:
    import socket

    from fer_stream.http import server as http_server

    monkeypatch.setattr(http_server._Handler, "timeout", 1)  # 10 s in the daemon
    server = start_http_server("127.0.0.1", 0, DaemonState(["lobby"]), str(tmp_path), threading.Lock())
    try:
        assert server.request_queue_size >= 128
        host, port = server.server_address[:2]
        idle = [socket.create_connection((host, port), timeout=5) for _ in range(20)]
        for sock in idle:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert get(server.url + "/healthz")[0] == 200, "idle clients do not block others"
        time.sleep(1.5)
        for sock in idle:
            assert sock.recv(1024) == b"", "the server closed the idle connection after its timeout"
            sock.close()
    finally:
        server.shutdown()
        server.server_close()
