"""The operator's review loop without processes: verdicts kept on disk (surviving SIGKILL), published to Redis as
schema-valid review events, shown and filtered in the alert list; roles; camera snoozes and the start cap."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from redis_fixtures import RedisServer

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.message import utc_from_epoch
from fer_stream.daemon_state import DaemonState
from fer_stream.http.access import Access
from fer_stream.http.history import AlertHistory
from fer_stream.http.server import start_http_server
from fer_stream.reviews.flood import FloodControl
from fer_stream.reviews.message import Review, Reviewer, json_schema
from fer_stream.reviews.publisher import ReviewPublisher
from fer_stream.reviews.store import ReviewStore
from tests.alerts_fixtures import make_alert, metric, wait_for

ADMIN, REVIEWER, VIEWER = "admin-token-0123456789abcdef", "reviewer-token-0123456789abc", "viewer-token-0123456789abcde"


def call(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict | str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            code, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        code, raw = exc.code, exc.read()
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw.decode()


def review_of(alert, verdict="dismissed", reason=None, at=None) -> Review:
    return Review(episode_id=alert.episode_id, camera=alert.camera, emotion=alert.emotion, started_at=alert.started_at,
                  verdict=verdict, reason=reason, reviewer=Reviewer(role="reviewer", name="ana"),
                  reviewed_at=at or utc_from_epoch(time.time()), host="h")


def test_review_events_validate_against_their_published_schema() -> None:
    alert = make_alert()
    for verdict, reason in (("confirmed", None), ("dismissed", "talking"), ("dismissed", "a cough, " + "x" * 150)):
        jsonschema.validate(json.loads(review_of(alert, verdict, reason).to_json()), json_schema())
    event = json.loads(review_of(alert).to_json())
    for broken in ({**event, "verdict": "maybe"}, {**event, "reason": "x" * 201}, {**event, "extra": 1},
                   {**event, "reviewer": {"role": "viewer", "name": None}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, json_schema())
        with pytest.raises(ValueError):
            Review.model_validate(broken)


KILLED_WRITER = """
import os, signal, sys, time
sys.path[:0] = [{repo!r}, {repo!r} + "/tests"]
from pathlib import Path
from fer_stream.reviews.store import ReviewStore
from tests.alerts_fixtures import make_alert
from tests.test_reviews import review_of
store = ReviewStore(Path({path!r}))
alert = make_alert(camera="door")
store.remember_episode(alert)
store.add(review_of(alert, "dismissed", "not a face"))
store.snooze("door", time.time() + 600, "reviewer", time.time())
print(alert.episode_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_verdicts_and_snoozes_survive_a_sigkill(tmp_path) -> None:
    from daemon_fixtures import REPO

    path = tmp_path / "state" / "reviews.sqlite3"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER.format(repo=str(REPO), path=str(path))],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == -9, done.stderr
    episode = done.stdout.strip()
    store = ReviewStore(path)
    verdict = store.verdicts([episode])[episode]
    assert (verdict.verdict, verdict.reason, verdict.reviewer.name) == ("dismissed", "not a face", "ana")
    assert store.episode(episode) is not None and store.episode(episode).camera == "door"
    assert [r.review_id for _, r in store.unpublished()] == [verdict.review_id], "still to be published"
    assert store.snoozes()["door"].until > time.time()


def test_the_latest_review_of_an_episode_is_its_verdict() -> None:
    store = ReviewStore(None)
    alert = make_alert()
    first = datetime.now(UTC)
    store.add(review_of(alert, "dismissed", "talking", at=first))
    store.add(review_of(alert, "confirmed", at=first + timedelta(seconds=5)))
    assert store.verdicts([alert.episode_id, "0" * 32])[alert.episode_id].verdict == "confirmed"
    assert len(store.unpublished()) == 2


@pytest.fixture
def site(tmp_path):
    """A console with all three tokens, the review file and flood control, over a real Redis."""
    redis = RedisServer(tmp_path)
    redis.start()
    alerts_config = AlertsConfig()
    redis_config = RedisConfig(url=redis.url)
    state = DaemonState(["door", "lobby"])
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    publisher = ReviewPublisher(redis_config, alerts_config.reviews, store)
    publisher.start()
    flood = FloodControl(["door", "lobby"], {"door": None, "lobby": 2}, store)
    state.flood = flood.status
    server = start_http_server(
        "127.0.0.1", 0, state, str(tmp_path), threading.Lock(),
        access=Access(ADMIN, reviewer_token=REVIEWER, viewer_token=VIEWER), history=AlertHistory(redis_config, alerts_config),
        reviews=store, flood=flood, on_review=publisher.notify,
    )  # fmt: skip
    yield state, store, flood, redis, server.url
    server.shutdown()
    publisher.close()
    redis.stop()


def publish(redis: RedisServer, *alerts) -> None:
    for alert in alerts:
        redis.client().xadd("fer:alerts:log", {"alert": alert.to_json()})


def test_a_reviewer_dismisses_with_a_reason_and_the_list_filters_on_it(site) -> None:
    state, store, _, redis, url = site
    door, lobby = make_alert(camera="door"), make_alert(camera="lobby")
    store.remember_episode(door)
    publish(redis, door, lobby)  # lobby's episode was seen by another daemon: found in the stream

    code, review = call(f"{url}/api/episodes/{door.episode_id}/review", REVIEWER,
                        {"verdict": "dismissed", "reason": "talking", "name": "ana"})
    assert code == 200 and review["reviewer"] == {"role": "reviewer", "name": "ana"} and review["camera"] == "door"
    code, review = call(f"{url}/api/episodes/{lobby.episode_id}/review", ADMIN, {"verdict": "confirmed"})
    assert code == 200 and review["reviewer"]["role"] == "admin" and review["camera"] == "lobby"

    def ids(query: str) -> list[str]:
        code, page = call(f"{url}/api/alerts?{query}", VIEWER)
        assert code == 200 and page["source"] == "redis", page
        return [event["alert"]["camera"] for event in page["events"]]

    assert ids("") == ["lobby", "door"]
    assert ids("review=dismissed") == ["door"] and ids("review=confirmed") == ["lobby"] and ids("review=unreviewed") == []
    assert ids("camera=lobby") == ["lobby"] and ids("emotion=fear") == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert ids(f"since={tomorrow.replace('+00:00', 'Z')}") == [] and ids("until=2000-01-01T00:00:00Z") == []
    page = call(f"{url}/api/alerts?review=dismissed", VIEWER)[1]
    assert page["events"][0]["review"]["reason"] == "talking"
    assert call(f"{url}/api/alerts?review=maybe", VIEWER)[0] == 400
    assert call(f"{url}/api/alerts?since=yesterday", VIEWER)[0] == 400

    # Published for integrations: the review stream holds both, valid against the schema.
    events = wait_for(lambda: [json.loads(f[b"review"]) for _, f in redis.client().xrange("fer:reviews:log")] or None,
                      10, "the review events in Redis")
    wait_for(lambda: len(redis.client().xrange("fer:reviews:log")) == 2, 10, "both review events")
    for event in [json.loads(f[b"review"]) for _, f in redis.client().xrange("fer:reviews:log")]:
        jsonschema.validate(event, json_schema())
    assert events[0]["verdict"] == "dismissed" and not store.unpublished()

    assert call(f"{url}/api/episodes/{'0' * 32}/review", REVIEWER, {"verdict": "confirmed"})[0] == 404
    assert call(f"{url}/api/episodes/{door.episode_id}/review", REVIEWER, {"verdict": "maybe"})[0] == 400
    assert call(f"{url}/api/episodes/{door.episode_id}/review", REVIEWER, {"verdict": "dismissed", "reason": "x" * 300})[0] == 400


def test_a_viewer_may_watch_but_not_review_or_snooze(site) -> None:
    state, store, _, redis, url = site
    door = make_alert(camera="door")
    store.remember_episode(door)
    publish(redis, door)
    assert call(f"{url}/api/alerts", VIEWER)[0] == 200 and call(f"{url}/status", VIEWER)[0] == 200
    assert call(f"{url}/api/episodes/{door.episode_id}/review", VIEWER, {"verdict": "dismissed"})[0] == 403
    assert call(f"{url}/api/cameras/door/snooze", VIEWER, {"minutes": 15})[0] == 403
    assert not store.verdicts([door.episode_id]) and not store.snoozes()
    assert call(f"{url}/api/episodes/{door.episode_id}/review", "wrong-token-0123456789", {"verdict": "dismissed"})[0] == 401

    def offered(token: str) -> list[str]:
        request = urllib.request.Request(url + "/", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            page = response.read().decode()
        from html import unescape

        config = json.loads(unescape(page.split('data-config="', 1)[1].split('"', 1)[0]))
        assert TOKENS_NOWHERE.isdisjoint(page.split())
        return config["can"]

    assert offered(VIEWER) == ["watch"]
    assert offered(REVIEWER) == ["review", "snooze", "watch"] and offered(ADMIN) == ["review", "snooze", "watch"]


TOKENS_NOWHERE = {ADMIN, REVIEWER, VIEWER}


def test_a_form_post_from_another_site_is_not_a_review(site) -> None:
    """A cross-site form cannot send JSON: the API takes only application/json."""
    _, store, _, _, url = site
    door = make_alert(camera="door")
    store.remember_episode(door)
    request = urllib.request.Request(f"{url}/api/episodes/{door.episode_id}/review", data=b"verdict=dismissed",
                                     headers={"Authorization": f"Bearer {REVIEWER}",
                                              "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 415 and not store.verdicts([door.episode_id])


def test_a_snoozed_camera_holds_back_whole_episodes_and_shows_it(site) -> None:
    state, store, flood, _, url = site
    code, answer = call(f"{url}/api/cameras/door/snooze", REVIEWER, {"minutes": 30, "name": "ana"})
    assert code == 200 and answer["snoozed_until"] > time.time() + 29 * 60 and answer["by"] == "reviewer (ana)"
    assert call(f"{url}/api/cameras/door/snooze", REVIEWER, {"minutes": -1})[0] == 400
    assert call(f"{url}/api/cameras/nope/snooze", REVIEWER, {"minutes": 5})[0] == 404
    held_before = metric("fer_alerts_held_back_total", camera="door", reason="snoozed")
    start = make_alert(camera="door")
    update = start.model_copy(update={"event": "update", "alert_id": "1" * 32})
    end = start.model_copy(update={"event": "end", "end_reason": "calm", "alert_id": "2" * 32})
    assert [flood.admit(a) for a in (start, update, end)] == [False, False, False]
    assert flood.admit(make_alert(camera="lobby")), "other cameras go on"
    assert metric("fer_alerts_held_back_total", camera="door", reason="snoozed") == held_before + 1
    assert metric("fer_camera_snoozed", camera="door") == 1
    door = call(f"{url}/status", VIEWER)[1]["cameras"]["door"]["flood"]
    assert door["snoozed_until"] > time.time() and door["held_back"]["snoozed"] == 1 and door["snoozed_by"] == "reviewer (ana)"

    assert call(f"{url}/api/cameras/door/snooze", ADMIN, {"minutes": 0})[0] == 200
    assert flood.admit(make_alert(camera="door")) and metric("fer_camera_snoozed", camera="door") == 0
    assert ReviewStore(store.path).snoozes()["door"].until <= time.time(), "kept on disk"


def test_a_snooze_outlives_a_restart(tmp_path) -> None:
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    FloodControl(["door"], {}, store).snooze("door", 600, "admin")
    store.close()
    again = FloodControl(["door"], {}, ReviewStore(tmp_path / "reviews.sqlite3"))
    assert not again.admit(make_alert(camera="door"))


def test_the_start_cap_holds_back_starts_beyond_it_within_the_hour() -> None:
    now = [1_800_000_000.0]
    flood = FloodControl(["gate"], {"gate": 2}, ReviewStore(None), clock=lambda: now[0])
    assert [flood.admit(make_alert(camera="gate")) for _ in range(3)] == [True, True, False]
    status = flood.status()["gate"]
    assert (status["starts_last_hour"], status["max_starts_per_hour"], status["held_back"]["cap"]) == (2, 2, 1)
    now[0] += 3601
    assert flood.admit(make_alert(camera="gate")), "an hour later there is room again"


def test_an_open_loopback_console_may_review_and_roles_need_their_own_tokens(tmp_path) -> None:
    from fer_stream.config.models import HttpSettings
    from fer_stream.preflight import _access_problems

    state = DaemonState(["door"])
    store = ReviewStore(None)
    alert = make_alert(camera="door")
    state.record_alert(alert)
    server = start_http_server("127.0.0.1", 0, state, str(tmp_path), threading.Lock(), reviews=store)
    try:
        code, review = call(f"{server.url}/api/episodes/{alert.episode_id}/review", body={"verdict": "confirmed"})
        assert code == 200 and review["reviewer"]["role"] == "local"
        page = call(f"{server.url}/api/alerts?review=confirmed")[1]
        assert page["source"] == "memory" and page["events"][0]["review"]["verdict"] == "confirmed"
        assert call(f"{server.url}/api/alerts?review=dismissed")[1]["events"] == []
        assert state.snapshot()["episodes_started"] == 1
    finally:
        server.shutdown()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FER_STREAM_CONSOLE_TOKEN", ADMIN)
        env.setenv("FER_STREAM_VIEWER_TOKEN", ADMIN)
        env.setenv("FER_STREAM_REVIEWER_TOKEN", "short")
        problems = " ".join(_access_problems(HttpSettings()))
    assert "http.reviewer_token_env" in problems and "same token" in problems and ADMIN not in problems
