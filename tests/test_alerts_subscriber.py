"""``fer-stream alerts`` as a subprocess against a real redis-server: live, replay without gaps, reconnect."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from alerts_fixtures import make_alert, wait_for
from redis_fixtures import redis_server, subprocess_env  # noqa: F401  (fixture)

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.message import json_schema
from fer_stream.alerts.publisher import AlertPublisher
from fer_stream.alerts.subscriber import parse_since

FER_STREAM = str(Path(sys.executable).with_name("fer-stream"))


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [FER_STREAM, "alerts", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, list[str], str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.splitlines(), err


def wait_subscribed(server, process: subprocess.Popen, channel: str = "fer:alerts") -> None:
    def subscribed():
        if process.poll() is not None:
            raise AssertionError(f"subscriber exited early: {process.communicate()}")
        return dict(server.client().pubsub_numsub(channel))[channel.encode()] >= 1

    wait_for(subscribed, timeout=30, what="the subscriber to subscribe")


def deliver(server, alerts) -> None:
    publisher = AlertPublisher(RedisConfig(url=server.url), AlertsConfig())
    publisher.start()
    for alert in alerts:
        publisher.submit(alert)
    assert publisher.close(timeout=10) == 0


def test_follows_live_alerts_as_json_lines(redis_server):
    process = start_cli("--redis", redis_server.url, "--json", "--count", "2", "--timeout", "60")
    wait_subscribed(redis_server, process)
    alerts = [make_alert(track_id=1), make_alert(track_id=2, event="end")]
    deliver(redis_server, alerts)
    code, lines, err = finish(process)
    assert code == 0, err
    documents = [json.loads(line) for line in lines]
    for document in documents:
        jsonschema.validate(document, json_schema())
    assert [d["alert_id"] for d in documents] == [a.alert_id for a in alerts]


def test_readable_lines_by_default(redis_server):
    process = start_cli("--redis", redis_server.url, "--count", "1", "--timeout", "60")
    wait_subscribed(redis_server, process)
    deliver(redis_server, [make_alert(camera="gate", track_id=12)])
    code, lines, err = finish(process)
    assert code == 0, err
    assert len(lines) == 1
    assert "gate  track 12  angry    START  mean 0.70  peak 0.90  2.0s" in lines[0]
    assert lines[0].startswith(datetime.now(UTC).strftime("%Y-%m-%dT"))


def test_since_replays_the_stream_then_continues_live_without_gaps_or_duplicates(redis_server):
    earlier = [make_alert(camera="gate", track_id=i) for i in range(3)] + [make_alert(camera="yard", track_id=9)]
    deliver(redis_server, earlier)
    process = start_cli(
        "--redis", redis_server.url, "--since", "0-0", "--camera", "gate", "--json", "--count", "4", "--timeout", "60"
    )
    wait_subscribed(redis_server, process)
    later = make_alert(camera="gate", track_id=50)
    deliver(redis_server, [later, make_alert(camera="yard", track_id=51)])
    code, lines, err = finish(process)
    assert code == 0, err
    ids = [json.loads(line)["alert_id"] for line in lines]
    assert ids == [a.alert_id for a in earlier[:3]] + [later.alert_id]


def test_since_a_time_skips_older_alerts(redis_server):
    deliver(redis_server, [make_alert(track_id=1)])
    time.sleep(0.05)
    cut = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    newer = make_alert(track_id=2)
    deliver(redis_server, [newer])
    code, lines, err = finish(start_cli("--redis", redis_server.url, "--since", cut, "--json", "--timeout", "3"))
    assert code == 0, err
    assert [json.loads(line)["alert_id"] for line in lines] == [newer.alert_id]


def test_reconnects_after_a_redis_restart_and_misses_nothing(redis_server):
    process = start_cli("--redis", redis_server.url, "--json", "--count", "2", "--timeout", "90")
    wait_subscribed(redis_server, process)
    first = make_alert(track_id=1)
    deliver(redis_server, [first])
    redis_server.stop()
    publisher = AlertPublisher(RedisConfig(url=redis_server.url), AlertsConfig())
    publisher.start()
    second = make_alert(track_id=2)
    publisher.submit(second)  # waits in the outbox while Redis is down
    time.sleep(2)
    redis_server.start()
    code, lines, err = finish(process, timeout=90)
    assert publisher.close(timeout=10) == 0
    assert code == 0, err
    assert [json.loads(line)["alert_id"] for line in lines] == [first.alert_id, second.alert_id]
    assert "reconnecting" in err


def test_count_not_reached_before_timeout_exits_1(redis_server):
    code, lines, _ = finish(start_cli("--redis", redis_server.url, "--count", "1", "--timeout", "1"))
    assert (code, lines) == (1, [])


def test_malformed_url_is_a_clear_error():
    code, _, err = finish(start_cli("--redis", "redis//nohost", "--timeout", "1"))
    assert code == 2
    assert "malformed Redis URL 'redis//nohost'" in err and "expected redis://[user@]host[:port][/db]" in err


def test_unreachable_redis_is_a_clear_error(redis_server):
    redis_server.stop()
    code, _, err = finish(start_cli("--redis", redis_server.url, "--timeout", "5"))
    assert code == 1
    assert f"cannot reach Redis at {redis_server.url}" in err and "Traceback" not in err


NOW_MS = 1_790_000_000_000


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("0-0", "0-0"),
        ("1700000000000-3", "1700000000000-3"),
        ("1700000000000", "1700000000000-0"),
        ("10m", f"{NOW_MS - 600_000}-0"),
        ("30s", f"{NOW_MS - 30_000}-0"),
        ("1.5h", f"{NOW_MS - 5_400_000}-0"),
        ("2023-11-14T22:13:20Z", "1700000000000-0"),
        ("2023-11-14T22:13:20", "1700000000000-0"),
        ("2023-11-14T23:13:20+01:00", "1700000000000-0"),
    ],
)
def test_parse_since(since, expected):
    assert parse_since(since, NOW_MS) == expected


def test_parse_since_refuses_nonsense():
    with pytest.raises(ValueError, match="expected a stream id"):
        parse_since("yesterday", NOW_MS)
