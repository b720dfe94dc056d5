"""The console's alert history: pages of the Redis stream the publisher appends to, newest first."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import redis

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.connection import connect, explain
from fer_stream.alerts.message import Alert

log = logging.getLogger(__name__)

#: A Redis stream entry id (``<ms>-<seq>``): the only cursor accepted.
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_PAGE = 200


class HistoryUnavailableError(Exception):
    """Redis cannot be read now; the message says why (never with a password)."""


class AlertHistory:
    def __init__(self, redis_config: RedisConfig, alerts: AlertsConfig) -> None:
        self.redis_config = redis_config
        self.stream = alerts.stream

    def page(self, *, before: str | None, limit: int) -> dict[str, Any]:
        """Up to ``limit`` events older than the stream id ``before`` (None: the newest), and the cursor of the next page."""
        if before is not None and not STREAM_ID.match(before):
            raise ValueError(f"before={before!r} is not a stream id (e.g. 1764680000000-0)")
        limit = max(1, min(limit, MAX_PAGE))
        client = connect(self.redis_config)
        try:
            entries = client.xrevrange(self.stream, max=f"({before}" if before else "+", min="-", count=limit) or []
        except redis.RedisError as exc:
            raise HistoryUnavailableError(explain(exc, self.redis_config)) from None
        finally:
            client.close()
        events = []
        for stream_id, fields in entries:
            raw = (fields or {}).get(b"alert") or (fields or {}).get("alert")
            if raw is None or stream_id is None:
                continue
            try:  # whoever can write to the stream must not be able to put script into the console
                alert = Alert.model_validate_json(raw)
            except ValueError:
                log.warning("alert stream entry %s is not an alert message; not shown", _text(stream_id))
                continue
            events.append({"id": _text(stream_id), "alert": json.loads(alert.to_json())})
        last = entries[-1][0] if entries else None
        return {"events": events, "next": _text(last) if len(entries) == limit and last is not None else None}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
