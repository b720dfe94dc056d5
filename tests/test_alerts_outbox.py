"""The alert journal on a disk that runs full: alerts move to memory, stay in order and bounded, and go back to disk."""

from __future__ import annotations

import json
import logging

from alerts_fixtures import make_alert, metric, wait_for
from disk_fixtures import TinyDisk, tiny_disk  # noqa: F401  (fixture)
from redis_fixtures import redis_server  # noqa: F401  (fixture)

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.outbox import Outbox
from fer_stream.alerts.publisher import AlertPublisher


def stream_ids(server) -> list[str]:
    return [json.loads(fields[b"alert"])["alert_id"] for _, fields in server.client().xrange("fer:alerts:log")]


def test_a_full_disk_moves_the_waiting_alerts_to_memory_and_back_into_the_journal(tiny_disk: TinyDisk, caplog):
    journal = tiny_disk.path / "outbox.sqlite3"
    alerts = [make_alert(track_id=i) for i in range(6)]
    outbox = Outbox(journal, capacity=10)
    errors = metric("fer_alert_journal_write_errors_total")
    assert outbox.append(alerts[0]) == [] and outbox.append(alerts[1]) == []
    tiny_disk.fill()
    with caplog.at_level(logging.ERROR, logger="fer_stream.alerts.outbox"):
        for alert in alerts[2:5]:
            assert outbox.append(alert) == []
    assert outbox.degraded and metric("fer_alert_journal_degraded") == 1
    assert metric("fer_alert_journal_write_errors_total") > errors
    assert "cannot be written (database or disk is full)" in caplog.text
    assert len(outbox) == 5
    seq, head = outbox.head()
    assert head.alert_id == alerts[0].alert_id, "the journal's alerts come first, in order"
    outbox.remove(seq)  # delivered while the disk is full

    tiny_disk.free()
    outbox.append(alerts[5])
    outbox.close()  # its last try to write the journal
    assert not outbox.degraded and metric("fer_alert_journal_degraded") == 0
    reopened = Outbox(journal, capacity=10)
    held = []
    while (entry := reopened.head()) is not None:
        held.append(entry[1].alert_id)
        reopened.remove(entry[0])
    assert held == [a.alert_id for a in alerts[1:]], "every waiting alert, once, in order, survives the restart"
    reopened.close()


def test_beyond_its_capacity_a_degraded_outbox_drops_the_oldest(tiny_disk: TinyDisk):
    outbox = Outbox(tiny_disk.path / "outbox.sqlite3", capacity=3)
    alerts = [make_alert(track_id=i) for i in range(5)]
    outbox.append(alerts[0])
    tiny_disk.fill()
    dropped = [d.alert_id for alert in alerts[1:] for d in outbox.append(alert)]
    assert outbox.degraded and len(outbox) == 3
    assert dropped == [alerts[0].alert_id, alerts[1].alert_id]
    assert outbox.head()[1].alert_id == alerts[2].alert_id
    outbox.close()


def test_with_the_journal_s_disk_full_alerts_still_reach_redis_in_order(redis_server, tiny_disk: TinyDisk):
    redis_config = RedisConfig(url=redis_server.url, socket_timeout_s=1, connect_timeout_s=1)
    publisher = AlertPublisher(redis_config, AlertsConfig(), tiny_disk.path / "outbox.sqlite3")
    publisher.start()
    alerts = [make_alert(track_id=i) for i in range(6)]
    publisher.submit(alerts[0])
    wait_for(lambda: publisher.depth == 0, what="the first alert delivered")
    tiny_disk.fill()
    for alert in alerts[1:]:
        publisher.submit(alert)
    wait_for(lambda: len(stream_ids(redis_server)) == 6, what="the alerts submitted on a full disk delivered")
    assert stream_ids(redis_server) == [a.alert_id for a in alerts]
    assert metric("fer_alert_journal_degraded") == 1 and publisher.depth == 0
    tiny_disk.free()
    wait_for(lambda: metric("fer_alert_journal_degraded") == 0, what="the idle publisher to write the journal again")
    assert publisher.close(timeout=5) == 0


def test_alerts_held_in_memory_reach_the_journal_at_close_once_space_returns(redis_server, tiny_disk: TinyDisk,
                                                                             caplog):  # fmt: skip
    journal = tiny_disk.path / "outbox.sqlite3"
    redis_config = RedisConfig(url=redis_server.url, socket_timeout_s=1, connect_timeout_s=1)
    redis_server.stop()
    first = AlertPublisher(redis_config, AlertsConfig(), journal)
    first.start()
    tiny_disk.fill()
    alerts = [make_alert(track_id=i) for i in range(3)]
    for alert in alerts:
        first.submit(alert)
    assert first.depth == 3 and metric("fer_alert_journal_degraded") == 1
    tiny_disk.free()
    with caplog.at_level(logging.WARNING, logger="fer_stream.alerts.publisher"):
        assert first.close(timeout=1) == 3
    assert f"kept in {journal} for the next start" in caplog.text
    redis_server.start()
    second = AlertPublisher(redis_config, AlertsConfig(), journal)
    second.start()
    assert second.close(timeout=10) == 0
    assert stream_ids(redis_server) == [a.alert_id for a in alerts]
