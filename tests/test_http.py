"""The console's routes, served by uvicorn from a real socket over a DaemonState (no child processes)."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import cv2
import numpy as np
import pytest

from fer_stream.daemon_state import STATUS_STALE_S, DaemonState
from fer_stream.evidence.store import SnapshotStore
from fer_stream.http.access import COOKIE, Access
from fer_stream.http.server import start_http_server
from fer_stream.messages import AlertPictures, CameraStatus, CameraView, ModelStatus, SourceState, TrackView
from tests.alerts_fixtures import make_alert, wait_for

TOKEN = "s3cret-console-token-0123"
LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def connect(url: str) -> http.client.HTTPConnection:
    """A raw connection to the served console, for endless streams and hand-made requests."""
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def jpeg(value: int = 0) -> bytes:
    return cv2.imencode(".jpg", np.full((8, 8, 3), value, np.uint8))[1].tobytes()


@pytest.fixture
def served(tmp_path):
    state = DaemonState(["lobby", "door"])
    server = start_http_server("127.0.0.1", 0, state, str(tmp_path), threading.Lock())
    yield state, server.url
    server.shutdown()


@pytest.fixture
def guarded(tmp_path):
    """A console with a token and a snapshot store, as bound beyond loopback."""
    state = DaemonState(["lobby"])
    store = SnapshotStore(tmp_path / "snapshots", max_bytes=10_000_000, retention_s=3600)
    server = start_http_server("127.0.0.1", 0, state, str(tmp_path), threading.Lock(), access=Access(TOKEN), snapshots=store)
    yield state, store, server.url
    server.shutdown()


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


def test_pages_status_and_single_frames(served) -> None:
    state, url = served
    code, ctype, body = get(url + "/")
    assert code == 200 and ctype.startswith("text/html")
    assert b'data-camera="lobby"' in body and b'data-camera="door"' in body and b"/static/console.js" in body
    assert get(url + "/static/console.js")[0] == 200
    assert get(url + "/cameras/lobby")[0] == 200 and get(url + "/cameras/nope")[0] == 404

    assert not state.viewers_present("lobby")
    assert get(url + "/cameras/lobby.jpg")[0] == 503  # asking is what makes the camera start sending
    assert state.viewers_present("lobby") and not state.viewers_present("door")
    state.update_view(CameraView(camera="lobby", at=time.monotonic(), jpeg=jpeg()))
    assert get(url + "/cameras/lobby.jpg") == (200, "image/jpeg", jpeg())
    assert get(url + "/cameras/nope.jpg")[0] == 404

    track = TrackView(track_id=3, box=(1, 2, 3, 4), emotion="angry", score=0.9, alerting=True, scores=(0.9, 0.1))
    state.update_status(CameraStatus(camera="lobby", state=SourceState.UP, up=True, at=time.monotonic(), processed_fps=9.5,
                                     tracks=(track,)))
    status = json.loads(get(url + "/status")[2])
    expected = {"track_id": 3, "box": [1, 2, 3, 4], "emotion": "angry", "score": 0.9, "alerting": True}
    assert status["cameras"]["lobby"]["tracks"][0] == expected
    assert status["cameras"]["door"]["state"] == "starting"


def test_the_live_stream_is_mjpeg_and_counts_as_watching(served) -> None:
    state, url = served
    connection = connect(url)
    connection.request("GET", "/cameras/door/live.mjpeg")
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    wait_for(lambda: state.viewers_present("door"), 5, "the open stream to count as a viewer")
    assert not state.viewers_present("lobby")
    for value in (10, 200):
        state.update_view(CameraView(camera="door", at=time.monotonic(), jpeg=jpeg(value)))
        boundary = response.readline()
        assert boundary.startswith(b"--")
        headers = {}
        while (line := response.readline().strip()):
            key, _, val = line.decode().partition(":")
            headers[key.lower()] = val.strip()
        assert headers["content-type"] == "image/jpeg"
        assert response.read(int(headers["content-length"])) == jpeg(value)
        response.readline()
    connection.close()
    wait_for(lambda: state.viewers.get("door") == 0, 5, "the closed stream to stop counting")


def test_alerts_arrive_as_server_sent_events_and_history_falls_back_to_memory(served) -> None:
    state, url = served
    connection = connect(url)
    connection.request("GET", "/api/alerts/live")
    response = connection.getresponse()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline().startswith(b"retry:")
    response.readline()
    wait_for(lambda: state.alert_listeners and get(url + "/healthz")[0] == 200, 5, "the listener")
    time.sleep(0.2)  # the event stream registers its queue once it runs
    alert = make_alert(camera="lobby")
    state.record_alert(alert)
    assert response.readline() == b"event: alert\n"
    assert json.loads(response.readline().removeprefix(b"data: ")) == json.loads(alert.to_json())
    connection.close()

    page = json.loads(get(url + "/api/alerts")[2])  # no Redis configured: the recent alerts kept in memory
    assert page["source"] == "memory" and page["events"][0]["alert"]["alert_id"] == alert.alert_id
    assert get(url + "/api/alerts?limit=x")[0] == 400


def test_history_pages_through_the_redis_stream_newest_first(tmp_path) -> None:
    from redis_fixtures import RedisServer

    from fer_stream.alerts.config import AlertsConfig, RedisConfig
    from fer_stream.http.history import AlertHistory

    redis = RedisServer(tmp_path)
    redis.start()
    state = DaemonState(["lobby"])
    history = AlertHistory(RedisConfig(url=redis.url), AlertsConfig())
    server = start_http_server("127.0.0.1", 0, state, str(tmp_path), threading.Lock(), history=history)
    try:
        alerts = [make_alert(camera="lobby", track_id=i) for i in range(7)]
        for alert in alerts:
            redis.client().xadd("fer:alerts:log", {"alert": alert.to_json()})
        seen, cursor, pages = [], None, 0
        while True:
            page = json.loads(get(server.url + "/api/alerts?limit=3" + (f"&before={cursor}" if cursor else ""))[2])
            assert page["source"] == "redis"
            seen += [event["alert"]["track_id"] for event in page["events"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == [6, 5, 4, 3, 2, 1, 0] and pages == 3
        # Whoever can write to the stream cannot put script into the console: entries that are not alerts are skipped.
        forged = json.loads(alerts[0].to_json()) | {"snapshot": {"frame": "javascript:alert(1)", "face": None}}
        redis.client().xadd("fer:alerts:log", {"alert": json.dumps(forged)})
        page = json.loads(get(server.url + "/api/alerts?limit=3")[2])
        assert [event["alert"]["track_id"] for event in page["events"]] == [6, 5]
        page = json.loads(get(server.url + f"/api/alerts?limit=3&before={page['next']}")[2])
        assert [event["alert"]["track_id"] for event in page["events"]] == [4, 3, 2], "the next page goes on past it"
        assert get(server.url + "/api/alerts?before=../x")[0] == 400
        redis.stop()
        state.record_alert(alerts[0])
        page = json.loads(get(server.url + "/api/alerts")[2])
        assert page["source"] == "memory" and "Redis" in page["reason"] and len(page["events"]) == 1
    finally:
        server.shutdown()
        redis.stop()


def test_scores_of_the_last_minute_for_the_chart(served) -> None:
    state, url = served
    state.set_model(ModelStatus(model_id="m", version="1", backend="litert", labels=LABELS, pid=1))
    for track_id in (1, 2):
        scores = tuple(1 / 7 for _ in LABELS)
        state.update_status(CameraStatus(camera="lobby", state=SourceState.UP, up=True, at=time.monotonic(), processed_fps=5,
                                         tracks=(TrackView(track_id=track_id, box=(0, 0, 1, 1), emotion="angry", score=0.2,
                                                           scores=scores),)))
    data = json.loads(get(url + "/api/cameras/lobby/scores")[2])
    assert data["labels"] == list(LABELS) and set(data["tracks"]) == {"1", "2"}
    assert len(data["tracks"]["1"][0][1]) == 7
    assert get(url + "/api/cameras/nope/scores")[0] == 404


def test_metrics_and_unknown_pages(served, tmp_path) -> None:
    _, url = served
    code, ctype, _ = get(url + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    (tmp_path / "counter_4242.db").write_bytes(b"")  # a child that is creating its metrics file right now
    assert get(url + "/metrics")[0] == 200, "a scrape at that moment still answers"
    code, _, body = get(url + "/nope")
    assert code == 404 and b"/metrics" in body


def test_every_page_has_an_icon_and_the_chart_its_thresholds(served, guarded) -> None:
    state, url = served
    code, ctype, body = get(url + "/favicon.ico")
    assert code == 200 and ctype == "image/svg+xml" and body.startswith(b"<svg")
    assert b'rel="icon"' in get(url + "/")[2]
    _, _, guarded_url = guarded
    assert get(guarded_url + "/favicon.ico")[0] == 200, "the login form's icon needs no token"
    state.thresholds["lobby"] = {"angry": 0.525, "fear": 0.35}
    assert json.loads(get(url + "/api/cameras/lobby/scores")[2])["thresholds"] == {"angry": 0.525, "fear": 0.35}


def test_busy_port_names_the_setting(served, tmp_path) -> None:
    state, url = served
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match="http.port"):
        start_http_server("127.0.0.1", port, state, str(tmp_path), threading.Lock())


def test_idle_half_sent_requests_do_not_block_others(served) -> None:
    _, url = served
    host, port = url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(50)]
    for sock in idle:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert get(url + "/healthz")[0] == 200
    for sock in idle:
        sock.close()


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading what it sent before), or None if it stayed open."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def trickled_until_closed(sock: socket.socket, data: bytes, every: float) -> float | None:
    """Send ``data`` a byte every ``every`` s; the seconds until the server closed ``sock``, or None if it never did."""
    started = time.monotonic()
    for byte in data:
        try:
            if select.select([sock], [], [], 0)[0] and not sock.recv(1):
                return time.monotonic() - started
            sock.send(bytes([byte]))
        except OSError:  # reset: closed
            return time.monotonic() - started
        time.sleep(every)
    return None


def test_a_connection_owing_its_request_is_closed_at_the_deadline_however_it_trickles(tmp_path, monkeypatch) -> None:
    from fer_stream.http import server as server_module

    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT_S", 1)
    server = start_http_server("127.0.0.1", 0, DaemonState(["lobby"]), str(tmp_path), threading.Lock())
    address = server.sock.getsockname()[:2]
    try:
        silent = socket.create_connection(address, timeout=5)
        assert (after := closed_within(silent, 3.0)) is not None and after < 2.0, "a socket that sends nothing"

        trickling = socket.create_connection(address, timeout=5)
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 100
        assert (after := trickled_until_closed(trickling, request, every=0.2)) is not None and after < 2.0, "a slow request"

        kept_alive = socket.create_connection(address, timeout=5)  # its next request trickles: every byte would
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # restart uvicorn's keep-alive timer
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        assert (after := trickled_until_closed(kept_alive, request, every=0.2)) is not None and after < 2.0, "between requests"
        assert get(server.url + "/healthz")[0] == 200
    finally:
        server.shutdown()


def test_waiting_connections_beyond_the_bounds_close_the_longest_waiting(tmp_path, monkeypatch) -> None:
    """Past the bound of one address, or of all, the oldest idle connection goes: never the newest, never a working one."""
    from fer_stream.http import server as server_module

    monkeypatch.setattr(server_module, "MAX_WAITING_PER_CLIENT", 4)
    monkeypatch.setattr(server_module, "MAX_WAITING", 8)
    server = start_http_server("127.0.0.1", 0, DaemonState(["lobby"]), str(tmp_path), threading.Lock())
    address = server.sock.getsockname()[:2]

    def connections(client: str, count: int) -> list[socket.socket]:
        opened = [socket.create_connection(address, timeout=5, source_address=(client, 0)) for _ in range(count)]
        time.sleep(0.3)  # accepted and counted
        return opened

    try:
        stream = connect(server.url)  # a working connection: its request has arrived, it is not waiting
        stream.request("GET", "/api/alerts/live")
        assert stream.getresponse().status == 200
        first = connections("127.0.0.2", 6)
        assert [closed_within(s, 0.5) is not None for s in first] == [True, True, False, False, False, False]
        others = connections("127.0.0.3", 4) + connections("127.0.0.4", 4)  # 12 waiting: 4 over the bound of all
        assert [closed_within(s, 0.5) is not None for s in first[2:]] == [True] * 4, "the oldest in all made room"
        assert not any(closed_within(s, 0.3) is not None for s in others)
        assert get(server.url + "/healthz")[0] == 200
        assert stream.sock is not None and closed_within(stream.sock, 0.3) is None, "a working connection stays"
        for sock in first + others:
            sock.close()
        stream.close()
    finally:
        server.shutdown()


# --- access control ------------------------------------------------------------------


def test_with_a_token_every_page_stream_snapshot_and_api_needs_it(guarded) -> None:
    state, store, url = guarded
    episode = uuid.uuid4().hex
    store.put(AlertPictures(name=f"{episode}-start", frame_jpeg=jpeg(), face_jpeg=jpeg(5)))
    state.update_view(CameraView(camera="lobby", at=time.monotonic(), jpeg=jpeg()))
    protected = ["/", "/cameras/lobby", "/cameras/lobby.jpg", "/cameras/lobby/live.mjpeg", "/status", "/api/alerts",
                 "/api/cameras/lobby/scores", f"/snapshots/{episode}-start.jpg", f"/snapshots/{episode}-start-face.jpg",
                 "/static/console.js"]
    for path in protected:
        code, ctype, body = get(url + path)
        assert code == 401, path
        code, ctype, body = get(url + path, {"Accept": "text/html"})
        assert code == 401 and (b"Access token" in body if ctype.startswith("text/html") else b"token" in body), path
        assert get(url + path, {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401, path
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in protected:
        if path.endswith(".mjpeg"):
            continue  # an endless stream: checked below
        assert get(url + path, bearer)[0] == 200, path
    assert get(url + f"/snapshots/{episode}-start.jpg", bearer)[2] == jpeg()
    connection = connect(url)
    connection.request("GET", "/cameras/lobby/live.mjpeg", headers=bearer)
    assert connection.getresponse().status == 200
    connection.close()
    for path in ("/healthz", "/readyz", "/metrics"):  # probes and scrapes stay open
        assert get(url + path)[0] in (200, 503), path


def test_the_login_form_sets_a_session_cookie(guarded) -> None:
    _, _, url = guarded
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(url + "/login", data=b"token=wrong&next=/status", timeout=10)
    assert refused.value.code == 401
    with opener.open(url + "/login", data=f"token={TOKEN}&next=/status".encode(), timeout=10) as response:
        assert response.status == 200 and "cameras" in json.loads(response.read())  # redirected to /status
    with opener.open(url + "/", timeout=10) as response:
        assert response.status == 200
    (cookie,) = jar
    assert cookie.name == COOKIE and TOKEN not in cookie.value and cookie.has_nonstandard_attr("HttpOnly")


def test_protect_probes_closes_them_too(tmp_path) -> None:
    server = start_http_server("127.0.0.1", 0, DaemonState(["lobby"]), str(tmp_path), threading.Lock(),
                               access=Access(TOKEN, protect_probes=True))
    try:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert get(server.url + path)[0] == 401
            assert get(server.url + path, {"Authorization": f"Bearer {TOKEN}"})[0] in (200, 503)
    finally:
        server.shutdown()


def test_session_cookies_expire_and_die_with_the_token() -> None:
    now = [1_790_000_000.0]
    access = Access(TOKEN, clock=lambda: now[0])
    cookie = access.session_cookie("admin")
    assert access.cookie_role(cookie) == "admin"
    assert Access("another-token-0123456789", clock=lambda: now[0]).cookie_role(cookie) is None
    assert access.cookie_role(cookie.replace(".", ".0", 1)) is None and access.cookie_role("garbage") is None
    assert access.cookie_role(cookie.replace(".admin.", ".reviewer.")) is None, "a cookie cannot be promoted"
    now[0] += 13 * 3600
    assert access.cookie_role(cookie) is None
    assert access.session_role({"cookie": "broken;;=="}) is None


def test_an_open_console_answers_only_to_its_own_names(served, guarded) -> None:
    """DNS rebinding: a web page whose name now points at 127.0.0.1 must not read an open console."""
    _, url = served
    assert get(url + "/status", {"Host": "evil.example"})[0] == 421
    assert get(url + "/status", {"Host": "localhost:9101"})[0] == 200
    code, _, body = get(url + "/", {"Host": "127.0.0.1"})
    assert code == 200
    _, _, guarded_url = guarded
    assert get(guarded_url + "/status", {"Host": "evil.example"})[0] == 401, "with a token, the token decides"


def test_pages_forbid_outside_scripts_and_framing(served) -> None:
    _, url = served
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_a_huge_chunked_login_is_refused_before_it_is_read(guarded) -> None:
    _, _, url = guarded
    connection = connect(url)
    connection.request("POST", "/login", body=iter([b"token=" + b"x" * 3000, b"y" * 3000]), encode_chunked=True,
                       headers={"Transfer-Encoding": "chunked"})
    assert connection.getresponse().status == 413
    connection.close()


@pytest.mark.parametrize("cookie", ['fer_session="\u00b2.x"', "fer_session=" + "9" * 5000 + ".x", "fer_session=9999999999.\u00e9"])
def test_a_malformed_session_cookie_is_no_credential_and_no_crash(cookie) -> None:
    assert Access(TOKEN).session_role({"cookie": cookie.encode().decode("unicode_escape")}) is None


def test_a_wrong_token_costs_its_address_a_second_and_a_flood_learns_no_more(guarded) -> None:
    _, _, url = guarded
    host, port = url.removeprefix("http://").split(":")
    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    started = time.monotonic()
    assert get(url + "/status", wrong)[0] == 401 and time.monotonic() - started >= 1.0

    answers: list[tuple[int, float]] = []
    stop = time.monotonic() + 2.5

    def guess() -> None:
        while time.monotonic() < stop:
            asked = time.monotonic()
            answers.append((get(url + "/status", wrong)[0], time.monotonic() - asked))

    guessers = [threading.Thread(target=guess) for _ in range(16)]
    for thread in guessers:
        thread.start()
    time.sleep(0.5)
    try:  # meanwhile: probes, and a token holder elsewhere, answered at once; the flood's address may not try a login
        for path, headers, source in (("/healthz", {}, "127.0.0.1"), ("/status", {"Authorization": f"Bearer {TOKEN}"}, "127.0.0.2")):
            connection = http.client.HTTPConnection(host, int(port), timeout=5, source_address=(source, 0))
            asked = time.monotonic()
            connection.request("GET", path, headers=headers)
            assert connection.getresponse().status == 200 and time.monotonic() - asked < 0.9, path
            connection.close()
        login = connect(url)
        login.request("POST", "/login", body=b"token=a-guess-0123456789&next=/",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert login.getresponse().status == 429
        login.close()
    finally:
        for thread in guessers:
            thread.join()
    verdicts = [took for code, took in answers if code == 401]
    assert set(code for code, _ in answers) <= {401, 429}
    assert 1 <= len(verdicts) <= 4 and min(verdicts) >= 1.0, f"{len(verdicts)} wrong tokens answered in 2.5 s"
