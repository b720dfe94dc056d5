"""Delivers reviews from the review file to Redis, oldest first, once each, while the console goes on.

A review is committed to the file before the reviewer gets an answer; this
thread then appends it to the review stream and publishes it on the review
channel with one Lua script (``SET seen NX`` first, as for alerts), and marks it
delivered. Reviews given while Redis was away, or before a restart, go out when
it answers again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

from fer_stream.alerts.config import RedisConfig, ReviewSettings
from fer_stream.alerts.connection import connect, explain
from fer_stream.reviews.store import ReviewStore

log = logging.getLogger(__name__)

#: KEYS: seen-key, stream. ARGV: json, ttl seconds, maxlen, channel. A review sent twice is added once.
DELIVER_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return false
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'review', ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return id
"""
RETRY_S = 2.0
#: How long Redis remembers a delivered review id.
DEDUPE_TTL_S = 86_400


class ReviewPublisher:
    def __init__(self, redis_config: RedisConfig, settings: ReviewSettings, store: ReviewStore) -> None:
        self.redis_config = redis_config
        self.settings = settings
        self.store = store
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="review-publisher", daemon=True)
        self._client: redis.Redis | None = None
        self._deliver: Any = None

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """A review was added: deliver it now."""
        self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        down = False
        while not self._closing:
            try:
                self._deliver_waiting()
                if down:
                    log.info("reviews reach Redis again")
                down = False
            except redis.RedisError as exc:
                if not down:
                    log.warning("%s; reviews wait in %s", explain(exc, self.redis_config), self.store.path or "memory")
                down = True
                self._close_client()
            self._wake.wait(RETRY_S)
            self._wake.clear()
        self._close_client()

    def _deliver_waiting(self) -> None:
        from fer_stream.metrics import REVIEWS_PUBLISHED

        while not self._closing and (waiting := self.store.unpublished()):
            if self._client is None:
                self._client = connect(self.redis_config)
                self._deliver = self._client.register_script(DELIVER_SCRIPT)
            stream = self.settings.stream
            for seq, review in waiting:
                self._deliver(keys=[f"{stream}:seen:{review.review_id}", stream],
                              args=[review.to_json(), DEDUPE_TTL_S, self.settings.stream_maxlen, self.settings.channel])
                self.store.mark_published(seq)
                REVIEWS_PUBLISHED.inc()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
