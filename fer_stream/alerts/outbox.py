"""Alerts waiting for Redis, in order, bounded, and (with a path) on disk across daemon restarts.

A small SQLite journal in WAL mode: an alert is appended when the supervisor
receives it and removed only after Redis confirmed it, so a daemon stopped or
killed while Redis was away delivers the waiting alerts when it runs again. An
alert that was being sent when the daemon died is sent again; the delivery
script's ``SET seen:<alert_id> NX`` keeps it once in the stream. Without a path
the same journal lives in memory (tests, or ``alerts.durable_outbox: false``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fer_stream.alerts.message import Alert

SCHEMA = "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert TEXT NOT NULL)"


class OutboxError(OSError):
    """The journal file cannot be opened or written; the message names it and the fix."""


class Outbox:
    """Not thread-safe: the publisher serialises every call under its own lock."""

    def __init__(self, path: Path | None, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False,
                                       isolation_level=None)  # fmt: skip
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; WAL keeps it consistent
            self._db.execute(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(
                f"alerts.outbox_path {path}: cannot open the alert journal ({exc}); point it at a writable file, "
                "or set alerts.durable_outbox: false"
            ) from None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def append(self, alert: Alert) -> list[Alert]:
        """Add at the tail; returns the oldest alerts dropped to stay within ``capacity``."""
        self._db.execute("INSERT INTO outbox (alert) VALUES (?)", (alert.to_json(),))
        excess = len(self) - self.capacity
        if excess <= 0:
            return []
        rows = self._db.execute("SELECT seq, alert FROM outbox ORDER BY seq LIMIT ?", (excess,)).fetchall()
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
        return [Alert.model_validate_json(text) for _, text in rows]

    def head(self) -> tuple[int, Alert] | None:
        row = self._db.execute("SELECT seq, alert FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (row[0], Alert.model_validate_json(row[1]))

    def remove(self, seq: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def close(self) -> None:
        self._db.close()
