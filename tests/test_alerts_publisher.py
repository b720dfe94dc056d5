"""The publisher against a real redis-server: delivery, idempotency, outage and restart, overflow, bad settings."""

from __future__ import annotations

import json
import logging
import time

import pytest
from alerts_fixtures import make_alert, metric, wait_for
from redis_fixtures import redis_server, redis_server_with_password  # noqa: F401  (fixtures)

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.connection import RedisSetupError
from fer_stream.alerts.message import Alert
from fer_stream.alerts.publisher import AlertPublisher


def stream_ids(server, stream: str = "fer:alerts:log") -> list[str]:
    return [json.loads(fields[b"alert"])["alert_id"] for _, fields in server.client().xrange(stream)]


def publisher_for(server, **alerts) -> AlertPublisher:
    return AlertPublisher(RedisConfig(url=server.url, socket_timeout_s=1, connect_timeout_s=1), AlertsConfig(**alerts))


def test_delivers_to_a_live_subscriber_and_into_the_stream(redis_server):
    listener = redis_server.client().pubsub(ignore_subscribe_messages=True)
    listener.subscribe("fer:alerts")
    published_before = metric("fer_alerts_published_total", camera="gate", emotion="angry", event="start")
    latency_before = metric("fer_alert_latency_seconds_count")
    publisher = publisher_for(redis_server)
    assert publisher.check_connection() is True
    publisher.start()
    alerts = [make_alert(track_id=i) for i in range(3)]
    for alert in alerts:
        publisher.submit(alert)
    received = []
    deadline = time.monotonic() + 30
    while len(received) < 3 and time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message and message["type"] == "message":
            received.append(Alert.from_json(message["data"]))
    assert received == alerts
    assert stream_ids(redis_server) == [a.alert_id for a in alerts]
    assert publisher.close(timeout=5) == 0
    assert metric("fer_alerts_published_total", camera="gate", emotion="angry", event="start") == published_before + 3
    assert metric("fer_alert_latency_seconds_count") == latency_before + 3
    assert metric("fer_redis_up") == 1 and metric("fer_alert_outbox_depth") == 0


def test_the_same_alert_twice_is_added_once(redis_server):
    publisher = publisher_for(redis_server)
    publisher.start()
    alert = make_alert()
    publisher.submit(alert)
    publisher.submit(alert)  # as after a lost reply: the retry must not duplicate
    publisher.submit(make_alert(track_id=2))
    assert publisher.close(timeout=10) == 0
    assert stream_ids(redis_server) == [alert.alert_id, stream_ids(redis_server)[1]]
    assert len(stream_ids(redis_server)) == 2


def test_redis_outage_alerts_arrive_after_restart_once_and_in_order(redis_server):
    publisher = publisher_for(redis_server)
    publisher.start()
    publisher.submit(make_alert(track_id=100))
    wait_for(lambda: len(stream_ids(redis_server)) == 1, what="the first alert")
    assert metric("fer_redis_up") == 1

    redis_server.stop()
    alerts = [make_alert(track_id=i) for i in range(5)]
    for alert in alerts:
        publisher.submit(alert)  # never blocks while Redis is away
    wait_for(lambda: metric("fer_redis_up") == 0, what="fer_redis_up to drop to 0")
    assert metric("fer_alert_outbox_depth") == 5
    time.sleep(5)
    redis_server.start()  # same port, empty (no persistence): like a restarted cache

    wait_for(lambda: len(stream_ids(redis_server)) >= 5, what="the outbox to drain after the restart")
    assert publisher.close(timeout=10) == 0
    assert stream_ids(redis_server) == [a.alert_id for a in alerts]
    assert metric("fer_redis_up") == 1 and metric("fer_alert_outbox_depth") == 0


def test_full_outbox_drops_the_oldest_and_counts(redis_server):
    dropped_before = metric("fer_alert_outbox_dropped_total")
    publisher = publisher_for(redis_server, outbox_size=3)
    alerts = [make_alert(track_id=i) for i in range(7)]
    for alert in alerts:  # not started yet: everything waits in the outbox
        publisher.submit(alert)
    assert metric("fer_alert_outbox_dropped_total") == dropped_before + 4
    assert publisher.depth == 3
    publisher.start()
    assert publisher.close(timeout=10) == 0
    assert stream_ids(redis_server) == [a.alert_id for a in alerts[4:]]


def test_stream_is_capped(redis_server):
    publisher = publisher_for(redis_server, stream_maxlen=10)
    publisher.start()
    for i in range(300):
        publisher.submit(make_alert(track_id=i))
    assert publisher.close(timeout=30) == 0
    length = redis_server.client().xlen("fer:alerts:log")
    assert 10 <= length < 300  # MAXLEN ~ trims whole macro nodes, so a little over 10 remains


def test_redis_down_at_start_is_a_warning_not_a_failure(redis_server, caplog):
    redis_server.stop()
    publisher = publisher_for(redis_server)
    with caplog.at_level(logging.WARNING):
        assert publisher.check_connection() is False
    assert "cannot reach Redis at redis://127.0.0.1" in caplog.text and "wait in the outbox" in caplog.text


def test_wrong_password_fails_fast_and_names_the_setting(redis_server_with_password, monkeypatch, caplog):
    right = redis_server_with_password.password
    monkeypatch.setenv("FER_STREAM_REDIS_PASSWORD", "not-the-password")
    with caplog.at_level(logging.DEBUG), pytest.raises(RedisSetupError) as caught:
        publisher_for(redis_server_with_password).check_connection()
    message = str(caught.value)
    assert "refused the credentials" in message and "FER_STREAM_REDIS_PASSWORD" in message
    assert "redis.password_env" in message
    assert "not-the-password" not in message + caplog.text and right not in message + caplog.text


def test_missing_password_says_which_variable_to_set(redis_server_with_password, monkeypatch):
    monkeypatch.delenv("FER_STREAM_REDIS_PASSWORD")
    with pytest.raises(RedisSetupError, match="requires a password .* FER_STREAM_REDIS_PASSWORD .* is not set"):
        publisher_for(redis_server_with_password).check_connection()


def test_right_password_from_the_environment_delivers(redis_server_with_password):
    publisher = publisher_for(redis_server_with_password)
    assert publisher.check_connection() is True
    publisher.start()
    publisher.submit(make_alert())
    assert publisher.close(timeout=10) == 0
    assert len(stream_ids(redis_server_with_password)) == 1


def test_idle_publisher_notices_an_outage_without_alerts(redis_server):
    publisher = publisher_for(redis_server)
    assert publisher.check_connection() is True
    assert metric("fer_redis_up") == 1
    publisher.start()
    redis_server.stop()
    wait_for(lambda: metric("fer_redis_up") == 0, what="the idle health check to notice the outage")
    redis_server.start()
    wait_for(lambda: metric("fer_redis_up") == 1, what="the idle health check to see Redis back")
    assert publisher.close(timeout=5) == 0


def test_a_journal_outbox_keeps_waiting_alerts_for_the_next_publisher(redis_server, tmp_path):
    journal = tmp_path / "state" / "outbox.sqlite3"
    redis_config = RedisConfig(url=redis_server.url, socket_timeout_s=1, connect_timeout_s=1)
    redis_server.stop()
    first = AlertPublisher(redis_config, AlertsConfig(outbox_size=4), journal)
    alerts = [make_alert(track_id=i) for i in range(6)]
    for alert in alerts:
        first.submit(alert)
    first.start()
    assert first.close(timeout=1) == 4, "Redis is down: the four newest wait"
    redis_server.start()
    second = AlertPublisher(redis_config, AlertsConfig(outbox_size=4), journal)
    assert second.depth == 4 and metric("fer_alert_outbox_depth") == 4
    second.start()
    assert second.close(timeout=10) == 0
    assert stream_ids(redis_server) == [a.alert_id for a in alerts[2:]], "in order, once, after the restart"
    third = AlertPublisher(redis_config, AlertsConfig(), journal)
    assert third.depth == 0
    third.close(timeout=1)
