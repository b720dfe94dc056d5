"""The console's alert history: pages of the Redis stream the publisher appends to, newest first, filtered."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.connection import connect, explain
from fer_stream.alerts.message import Alert
from fer_stream.reviews.message import Review

log = logging.getLogger(__name__)

#: A Redis stream entry id (``<ms>-<seq>``): the only cursor accepted.
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_PAGE = 200
#: Stream entries one filtered page reads at most; past it the page ends early with a cursor to go on.
SCAN_BUDGET = 5000
SCAN_CHUNK = 500
REVIEW_STATES = ("unreviewed", "confirmed", "dismissed")

Verdicts = Callable[[list[str]], dict[str, Review]]


class HistoryUnavailableError(Exception):
    """Redis cannot be read now; the message says why (never with a password)."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alert events a page shows: all of these that are set must match."""

    camera: str | None = None
    emotion: str | None = None
    review: str | None = None  # one of REVIEW_STATES
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AlertFilter:
        """From the API's query parameters; raises ValueError naming the one that is wrong."""
        review = query.get("review") or None
        if review is not None and review not in REVIEW_STATES:
            raise ValueError(f"review={review!r}: use one of {', '.join(REVIEW_STATES)}")
        return cls(camera=query.get("camera") or None, emotion=(query.get("emotion") or "").lower() or None, review=review,
                   since=_time(query, "since"), until=_time(query, "until"))  # fmt: skip

    @property
    def by_event(self) -> bool:
        """Whether anything but the time range filters (the time range is the stream ids' own)."""
        return any((self.camera, self.emotion, self.review))

    def matches(self, alert: Alert, verdict: Review | None) -> bool:
        state = "unreviewed" if verdict is None else verdict.verdict
        return ((self.camera is None or alert.camera == self.camera) and (self.emotion is None or alert.emotion == self.emotion)
                and (self.review is None or state == self.review)
                and (self.since is None or alert.event_at >= self.since) and (self.until is None or alert.event_at < self.until))


class AlertHistory:
    def __init__(self, redis_config: RedisConfig, alerts: AlertsConfig) -> None:
        self.redis_config = redis_config
        self.stream = alerts.stream

    def page(self, *, before: str | None, limit: int, where: AlertFilter | None = None,
             verdicts: Verdicts = lambda ids: {}) -> dict[str, Any]:  # fmt: skip
        """Up to ``limit`` events older than the stream id ``before`` (None: the newest) that match ``where``,
        each with its episode's verdict, and the cursor of the next page (None: no more)."""
        if before is not None and not STREAM_ID.match(before):
            raise ValueError(f"before={before!r} is not a stream id (e.g. 1764680000000-0)")
        where = where or AlertFilter()
        limit = max(1, min(limit, MAX_PAGE))
        newest = f"({before}" if before else f"({_ms(where.until)}-0" if where.until else "+"
        oldest = f"{_ms(where.since)}-0" if where.since else "-"
        events: list[dict[str, Any]] = []
        cursor, scanned, last_seen, exhausted = newest, 0, None, False
        client = connect(self.redis_config)
        try:
            while len(events) < limit and scanned < SCAN_BUDGET:
                # Unfiltered, a page is one read of ``limit`` entries; filtered, chunks are read until the page is full.
                count = SCAN_CHUNK if where.by_event else limit
                entries = client.xrevrange(self.stream, max=cursor, min=oldest, count=count) or []
                alerts = dict(_alerts(entries))
                known = verdicts([alert.episode_id for alert in alerts.values()]) if alerts else {}
                examined = 0
                for stream_id, _ in entries:
                    examined += 1
                    last_seen = _text(stream_id or b"")
                    alert = alerts.get(last_seen)
                    if alert is not None and where.matches(alert, review := known.get(alert.episode_id)):
                        events.append({"id": last_seen, "alert": json.loads(alert.to_json()),
                                       "review": None if review is None else json.loads(review.to_json())})  # fmt: skip
                        if len(events) == limit:
                            break
                scanned += examined
                if examined == len(entries) and len(entries) < count:
                    exhausted = True
                if exhausted or not where.by_event or last_seen is None:
                    break
                cursor = f"({last_seen}"
        except redis.RedisError as exc:
            raise HistoryUnavailableError(explain(exc, self.redis_config)) from None
        finally:
            client.close()
        return {"events": events, "next": None if exhausted or last_seen is None else last_seen}

    def find(self, episode_id: str) -> Alert | None:
        """The newest event of an episode within the last SCAN_BUDGET entries of the stream, None if not there."""
        client = connect(self.redis_config)
        cursor, scanned = "+", 0
        try:
            while scanned < SCAN_BUDGET:
                entries = client.xrevrange(self.stream, max=cursor, min="-", count=SCAN_CHUNK) or []
                for _, alert in _alerts(entries):
                    if alert.episode_id == episode_id:
                        return alert
                if len(entries) < SCAN_CHUNK:
                    return None
                scanned += len(entries)
                cursor = f"({_text(entries[-1][0] or b'')}"
        except redis.RedisError as exc:
            raise HistoryUnavailableError(explain(exc, self.redis_config)) from None
        finally:
            client.close()
        return None


def _alerts(entries: Iterable[tuple[Any, Any]]) -> Iterable[tuple[str, Alert]]:
    """The entries that are alert messages; whoever can write to the stream must not put script into the console."""
    for stream_id, fields in entries:
        raw = (fields or {}).get(b"alert") or (fields or {}).get("alert")
        if raw is None or stream_id is None:
            continue
        try:
            yield _text(stream_id), Alert.model_validate_json(raw)
        except ValueError:
            log.warning("alert stream entry %s is not an alert message; not shown", _text(stream_id))


def _time(query: Mapping[str, str], key: str) -> datetime | None:
    value = query.get(key)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{key}={value!r} is not an ISO 8601 time (e.g. 2026-12-04T08:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
