"""The console's alert history: pages of the Redis stream the publisher appends to, newest first."""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from fer_stream.alerts.config import AlertsConfig, RedisConfig
from fer_stream.alerts.connection import connect, explain

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
            events.append({"id": _text(stream_id), "alert": json.loads(raw)})
        return {"events": events, "next": events[-1]["id"] if len(entries) == limit and events else None}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
