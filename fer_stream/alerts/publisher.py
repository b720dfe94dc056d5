"""Delivers alerts to Redis from the durable outbox (a journal on disk), in order, once, whatever Redis does.

``submit`` never blocks: the supervisor's loop (and so every camera) keeps
going while Redis is down or slow. One background thread delivers the outbox
head first; each delivery is one Lua script, atomic on the server:

    SET <stream>:seen:<alert_id> NX EX ttl  ->  XADD <stream> MAXLEN ~ n * alert <json>  +  PUBLISH <channel> <json>

so an alert retried after a lost reply or a reconnect is neither appended nor
published twice. The outbox is a journal (``fer_stream/alerts/outbox.py``): on
disk by default, so alerts held while Redis was down survive a daemon restart;
when its disk is full it holds them in memory and delivery goes on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import redis

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.connection import RedisSetupError, connect, explain, is_setup_error
from fer_stream.alerts.message import Alert
from fer_stream.alerts.outbox import Outbox
from fer_stream.metrics import (
    ALERT_LATENCY_SECONDS,
    ALERT_OUTBOX_DEPTH,
    ALERT_OUTBOX_DROPPED,
    ALERTS_PUBLISHED,
    REDIS_UP,
)

log = logging.getLogger(__name__)

#: KEYS: seen-key, stream. ARGV: json, ttl seconds, maxlen, channel. Returns the stream id, or false for a replay.
DELIVER_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return false
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'alert', ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return id
"""

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
#: While idle, Redis is pinged this often so fer_redis_up shows an outage before the next alert does.
HEALTH_CHECK_EVERY_S = 2.0


class AlertPublisher:
    """Owns the outbox and the delivery thread. Create once per daemon, in the supervisor."""

    def __init__(self, redis_config: RedisConfig, alerts: AlertsConfig, outbox_path: Path | None = None) -> None:
        """``outbox_path``: the journal file (alerts survive a restart); None keeps it in memory."""
        self.redis_config = redis_config
        self.alerts = alerts
        self._outbox = Outbox(outbox_path, alerts.outbox_size)
        self._in_flight: int | None = None  # journal seq of the alert being sent
        self._wake = threading.Condition()
        self._closing = False
        self._stopped = threading.Event()  # wakes the backoff sleep on close (submit must not)
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._deliver: Any = None  # the registered Lua script
        self._up: bool | None = None
        REDIS_UP.set(0)
        waiting = len(self._outbox)
        ALERT_OUTBOX_DEPTH.set(waiting)
        if waiting:
            log.info("%d alert(s) from before the restart wait in %s", waiting, outbox_path)

    # --- called by the supervisor -------------------------------------------------

    def check_connection(self) -> bool:
        """At daemon start: True if Redis answers, False (with a warning) if it is merely away.

        Raises RedisSetupError when the settings cannot work (wrong or missing
        credentials, TLS failure): the daemon should stop and say so.
        """
        client = connect(self.redis_config)
        try:
            client.ping()
        except redis.RedisError as exc:
            if is_setup_error(exc):
                raise RedisSetupError(explain(exc, self.redis_config)) from None
            log.warning("%s; alerts wait in the outbox (up to %d) until it answers", explain(exc, self.redis_config),
                        self.alerts.outbox_size)
            return False
        finally:
            client.close()
        self._mark_up()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-publisher", daemon=True)
        self._thread.start()

    def submit(self, alert: Alert) -> None:
        """Queue an alert for delivery; when the outbox is full the oldest waiting alert is dropped and counted."""
        with self._wake:
            for dropped in self._outbox.append(alert):
                ALERT_OUTBOX_DROPPED.inc()
                log.warning("alert outbox full (%d): dropped %s alert %s of camera %s", self.alerts.outbox_size,
                            dropped.event, dropped.alert_id, dropped.camera)
            self._set_depth()
            self._wake.notify()

    @property
    def depth(self) -> int:
        """Alerts not yet delivered (waiting plus the one being tried)."""
        with self._wake:
            return len(self._outbox)

    def health(self) -> dict[str, bool | int]:
        """For the console: whether Redis answered last time, and how many alerts wait."""
        return {"redis_up": bool(self._up), "outbox": self.depth}

    def close(self, timeout: float = 5.0) -> int:
        """Deliver what can be delivered within ``timeout`` seconds, then stop. Returns how many were left."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while len(self._outbox) and self._thread and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(min(remaining, 0.1))
            self._closing = True
            self._stopped.set()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(deadline - time.monotonic(), 0) + self.redis_config.socket_timeout_s)
        with self._wake:
            left = len(self._outbox)
            self._outbox.close()
        if left and self._outbox.degraded:
            log.error("alert publisher stopped with %d alert(s) undelivered: lost, the journal %s could not be written",
                      left, self._outbox.path)
        elif left:
            where = f"kept in {self._outbox.path} for the next start" if self._outbox.path else "lost (in-memory outbox)"
            log.warning("alert publisher stopped with %d alert(s) undelivered: %s", left, where)
        return left

    # --- the delivery thread -------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            with self._wake:
                if not len(self._outbox) and not self._closing:
                    self._wake.wait(HEALTH_CHECK_EVERY_S)
                if self._closing:
                    return
                self._outbox.catch_up()  # a journal that could not be written is retried even when no alert comes
                head = self._outbox.head()
                self._in_flight, alert = (None, None) if head is None else head
            try:
                if alert is None:
                    self._ping()  # idle: keep fer_redis_up true to the facts between alerts
                    continue
                self._publish(alert)
            except redis.RedisError as exc:
                self._mark_down(exc)
                self._stopped.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_FIRST_S
            with self._wake:
                if self._in_flight is not None and not self._closing:
                    self._outbox.remove(self._in_flight)
                self._in_flight = None
                self._set_depth()
                self._wake.notify_all()

    def _connected(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(self.redis_config)
            self._deliver = self._client.register_script(DELIVER_SCRIPT)
        return self._client

    def _ping(self) -> None:
        self._connected().ping()
        self._mark_up()

    def _publish(self, alert: Alert) -> None:
        self._connected()
        stream = self.alerts.stream
        stream_id = self._deliver(
            keys=[f"{stream}:seen:{alert.alert_id}", stream],
            args=[alert.to_json(), self.alerts.dedupe_ttl_s, self.alerts.stream_maxlen, self.alerts.channel],
        )
        self._mark_up()
        if stream_id is None:
            log.info("alert %s was already delivered (retry after a lost reply); not added again", alert.alert_id)
            return
        ALERTS_PUBLISHED.labels(camera=alert.camera, emotion=alert.emotion, event=alert.event).inc()
        if alert.event == "start":
            ALERT_LATENCY_SECONDS.observe(max(time.time() - alert.event_at.timestamp(), 0.0))

    def _mark_up(self) -> None:
        if self._up is not True:
            log.info("connected to %s; delivering alerts", self.redis_config.redacted_url())
            self._up = True
            REDIS_UP.set(1)

    def _mark_down(self, exc: redis.RedisError) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        if self._up is not False:
            level = logging.ERROR if is_setup_error(exc) else logging.WARNING
            log.log(level, "%s; %d alert(s) wait in the outbox, retrying with backoff", explain(exc, self.redis_config),
                    self.depth)
            self._up = False
            REDIS_UP.set(0)

    def _set_depth(self) -> None:
        ALERT_OUTBOX_DEPTH.set(len(self._outbox))
