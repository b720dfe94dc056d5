"""Alert messages against the published JSON Schema, and the alerts/redis config sections."""

from __future__ import annotations

import json
import pickle

import jsonschema
import numpy as np
import pytest
from pydantic import ValidationError

from fer_stream.alerts.config import AlertRules, AlertsConfig, RedisConfig
from fer_stream.alerts.message import Alert, json_schema
from fer_stream.alerts.rules import AlertTracker
from fer_stream.config.models import AlertRulesOverride, _merged
from fer_stream.redaction import redact_url

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def produced_alerts() -> list[Alert]:
    """A start, an update and an end from the real rules."""
    tracker = AlertTracker(AlertRules(update_every_s=2), "lobby", LABELS, "fer-mobilenet", "2026.11.24")
    angry, calm = np.array([0.8, 0, 0.05, 0.05, 0.1, 0, 0]), np.array([0.05, 0, 0, 0.05, 0.9, 0, 0])
    alerts = []
    for i in range(60):
        alerts += tracker.observe(4, angry if i < 40 else calm, 1_790_000_000 + i * 0.1, (5, 6, 70, 80), (1280, 720))
    assert [a.event for a in alerts] == ["start", "update", "end"]
    return alerts


def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_every_produced_message_validates_and_round_trips():
    check = validator()
    for alert in produced_alerts():
        document = json.loads(alert.to_json())
        check.validate(document)
        assert document["started_at"].endswith("Z") and document["event_at"].endswith("Z")
        assert Alert.from_json(alert.to_json()) == alert
        assert pickle.loads(pickle.dumps(alert)) == alert


def test_schema_lists_exactly_the_model_fields():
    schema = json_schema()
    assert set(schema["required"]) == set(schema["properties"]) == set(Alert.model_fields)


@pytest.mark.parametrize(
    "change",
    [
        {"event": "middle"},
        {"alert_id": "not-hex"},
        {"peak_score": 1.5},
        {"track_id": -1},
        {"event_at": "2026-11-24 12:00:00"},
        {"box": {"x": 1, "y": 2, "w": 3}},
        {"password": "leak"},
        {"schema_version": 1},
        {"episode_id": None},
        {"end_reason": "calm"},  # on a start
        {"end_reason": "bored"},
        {"snapshot": {"frame": "/snapshots/x.jpg"}},
        {"snapshot": {"frame": "javascript:alert(1)", "face": None}},
        {"camera": ""},
        {"score": 1.2},
    ],
)
def test_invalid_messages_fail_the_schema(change):
    document = json.loads(produced_alerts()[0].to_json())
    document.update(change)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(document)


def test_an_end_needs_its_reason_in_the_schema_and_the_model():
    document = json.loads(produced_alerts()[-1].to_json())
    assert document["end_reason"] == "calm"
    document["end_reason"] = None
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(document)
    with pytest.raises(ValidationError, match="end_reason"):
        Alert.model_validate(document)


def test_a_message_with_its_snapshot_validates():
    document = json.loads(produced_alerts()[0].to_json())
    document["snapshot"] = {"frame": f"/snapshots/{document['episode_id']}-start.jpg", "face": None}
    validator().validate(document)
    assert Alert.model_validate(document).snapshot is not None


def test_missing_field_fails_the_schema():
    document = json.loads(produced_alerts()[0].to_json())
    del document["camera"]
    with pytest.raises(jsonschema.ValidationError, match="camera"):
        validator().validate(document)


def test_alert_ids_are_unique():
    batches = [produced_alerts() for _ in range(20)]
    assert len({a.alert_id for batch in batches for a in batch}) == 60
    assert len({a.episode_id for batch in batches for a in batch}) == 20


# --- config ----------------------------------------------------------------------


def test_defaults(monkeypatch):
    monkeypatch.delenv("FER_STREAM_REDIS_URL", raising=False)
    config = AlertsConfig()
    assert (config.channel, config.stream, config.enabled) == ("fer:alerts", "fer:alerts:log", True)
    assert config.rules.watched == ["angry", "fear"]
    assert RedisConfig().url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://host:6379", "scheme 'http'"),
        ("redis://", "no host"),
        ("redis://host:notaport", "Port could not be cast"),
        ("redis://host/zero", "database 'zero'"),
        ("localhost:6379", "scheme"),
    ],
)
def test_malformed_url_names_the_key_and_the_expected_form(monkeypatch, url, problem):
    monkeypatch.delenv("FER_STREAM_REDIS_URL", raising=False)
    with pytest.raises(ValidationError) as caught:
        RedisConfig(url=url)
    error = caught.value.errors()[0]
    assert error["loc"] == ("url",)
    assert problem in error["msg"] and "expected redis://[user@]host[:port][/db]" in error["msg"]


def test_environment_url_wins_and_is_named_when_malformed(monkeypatch):
    monkeypatch.setenv("FER_STREAM_REDIS_URL", "redis://from-env:7000/2")
    assert RedisConfig(url="redis://from-file").url == "redis://from-env:7000/2"
    monkeypatch.setenv("FER_STREAM_REDIS_URL", "redis:/broken")
    with pytest.raises(ValidationError, match="from the environment variable FER_STREAM_REDIS_URL"):
        RedisConfig()


def test_password_comes_from_the_environment_and_is_redacted(monkeypatch):
    monkeypatch.delenv("FER_STREAM_REDIS_URL", raising=False)
    monkeypatch.setenv("MY_REDIS_PW", "s3cret")
    config = RedisConfig(url="redis://cache:6379/0", password_env="MY_REDIS_PW")
    assert config.password() == "s3cret" and "s3cret" not in repr(config)
    assert redact_url("rediss://alice:s3cret@cache:6380/1") == "rediss://alice:***@cache:6380/1"
    with pytest.raises(ValidationError) as caught:
        RedisConfig(url="redis://:s3cret@cache:port")
    assert "s3cret" not in str(caught.value)


def test_tls_options_need_rediss(monkeypatch):
    monkeypatch.delenv("FER_STREAM_REDIS_URL", raising=False)
    with pytest.raises(ValidationError, match="tls.verify: TLS options need a rediss:// URL"):
        RedisConfig(url="redis://cache", tls={"verify": False})
    assert RedisConfig(url="rediss://cache", tls={"verify": False}).tls.verify is False
    with pytest.raises(ValidationError, match="cert_file and tls.key_file must be set together"):
        RedisConfig(url="rediss://cache", tls={"cert_file": "/c.pem"})


def test_rules_validation_messages():
    with pytest.raises(ValidationError, match=r"release_threshold \(0.6\) must be below enter_threshold \(0.5\)"):
        AlertRules(enter_threshold=0.5, release_threshold=0.6)
    with pytest.raises(ValidationError, match="watched is empty"):
        AlertRules(watched=[])
    with pytest.raises(ValidationError, match="twice"):
        AlertRules(watched=["angry", "Angry"])
    with pytest.raises(ValidationError, match="extra"):
        AlertRules.model_validate({"treshold": 0.5})
    with pytest.raises(ValidationError, match="enter_threshold: give a value or leave the key out"):
        AlertRulesOverride.model_validate({"enter_threshold": None})


def test_override_that_breaks_hysteresis_is_refused_when_merged():
    with pytest.raises(ValidationError, match="must be below enter_threshold"):
        _merged(AlertRules(), AlertRulesOverride(enter_threshold=AlertRules().release_for("angry") - 0.05))
