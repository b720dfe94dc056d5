"""Alerts waiting for Redis, in order, bounded, and (with a path) on disk across daemon restarts.

A small SQLite journal in WAL mode: an alert is appended when the supervisor
receives it and removed only after Redis confirmed it, so a daemon stopped or
killed while Redis was away delivers the waiting alerts when it runs again. An
alert that was being sent when the daemon died is sent again; the delivery
script's ``SET seen:<alert_id> NX`` keeps it once in the stream. Without a path
the same journal lives in memory (tests, or ``alerts.durable_outbox: false``).

A journal that cannot be written (its disk is full, the file turned read-only)
must not stop the daemon, since alerts are still delivered while Redis answers.
The outbox then degrades: the waiting alerts move to memory, bounded by the
same capacity, ``fer_alert_journal_degraded`` is 1 and every failed write is
counted. At most every ``RETRY_JOURNAL_S`` it writes what memory holds back into
the journal in one transaction; once that succeeds it is durable again. What is
held only in memory is lost if the daemon stops before then.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

from fer_stream.alerts.message import Alert
from fer_stream.metrics import ALERT_JOURNAL_DEGRADED, ALERT_JOURNAL_WRITE_ERRORS

log = logging.getLogger(__name__)

SCHEMA = "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert TEXT NOT NULL)"
#: A journal that could not be written is tried again this often (each try rewrites every waiting alert).
RETRY_JOURNAL_S = 1.0


class OutboxError(OSError):
    """The journal file cannot be opened or written; the message names it and the fix."""


class Outbox:
    """Not thread-safe: the publisher serialises every call under its own lock.

    Each alert keeps one sequence number whether it waits in the journal or in
    memory, so the publisher's ``head`` / ``remove`` pair works across a change
    between the two.
    """

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
            self._last_seq: int = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(
                f"alerts.outbox_path {path}: cannot open the alert journal ({exc}); point it at a writable file, "
                "or set alerts.durable_outbox: false"
            ) from None
        self._held: dict[int, Alert] | None = None  # the waiting alerts while the journal cannot be written
        self._retry_at = 0.0
        ALERT_JOURNAL_DEGRADED.set(0)

    @property
    def degraded(self) -> bool:
        """True while the waiting alerts are held in memory because the journal cannot be written."""
        return self._held is not None

    def __len__(self) -> int:
        if self._held is not None:
            return len(self._held)
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def append(self, alert: Alert) -> list[Alert]:
        """Add at the tail; returns the oldest alerts dropped to stay within ``capacity``."""
        self.catch_up()
        held = self._held
        if held is None:
            try:
                return self._append_to_journal(alert)
            except sqlite3.Error as exc:
                held = self._degrade(exc)
        self._last_seq += 1
        held[self._last_seq] = alert
        return [held.pop(seq) for seq in list(islice(held, max(len(held) - self.capacity, 0)))]

    def head(self) -> tuple[int, Alert] | None:
        if self._held is not None:
            return next(iter(self._held.items()), None)
        row = self._db.execute("SELECT seq, alert FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (row[0], Alert.model_validate_json(row[1]))

    def remove(self, seq: int) -> None:
        held = self._held
        if held is None:
            try:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                return
            except sqlite3.Error as exc:
                held = self._degrade(exc)
        held.pop(seq, None)

    def catch_up(self) -> None:
        """While degraded and a retry is due: write every alert held in memory to the journal, all or none."""
        held = self._held
        if held is None or time.monotonic() < self._retry_at:
            return
        try:
            with self._transaction():
                self._db.execute("DELETE FROM outbox")  # its rows from before: since delivered, dropped or held here
                self._db.executemany("INSERT INTO outbox (seq, alert) VALUES (?, ?)",
                                     [(seq, alert.to_json()) for seq, alert in held.items()])  # fmt: skip
        except sqlite3.Error:
            ALERT_JOURNAL_WRITE_ERRORS.inc()
            self._retry_at = time.monotonic() + RETRY_JOURNAL_S
            return
        self._held = None
        ALERT_JOURNAL_DEGRADED.set(0)
        log.info("alert journal %s can be written again: the %d waiting alert(s) held in memory are in it", self.path,
                 len(held))  # fmt: skip

    def close(self) -> None:
        """A last try to put what memory holds into the journal, then close it."""
        self._retry_at = 0.0
        self.catch_up()
        self._db.close()

    def _append_to_journal(self, alert: Alert) -> list[Alert]:
        with self._transaction():
            seq = self._db.execute("INSERT INTO outbox (alert) VALUES (?)", (alert.to_json(),)).lastrowid
            excess = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.capacity
            rows = self._db.execute("SELECT seq, alert FROM outbox ORDER BY seq LIMIT ?", (max(excess, 0),)).fetchall()
            if rows:
                self._db.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
        self._last_seq = seq or self._last_seq
        return [Alert.model_validate_json(text) for _, text in rows]

    def _degrade(self, exc: sqlite3.Error) -> dict[int, Alert]:
        """A write failed: from now on the waiting alerts are held in memory, starting with the journal's."""
        ALERT_JOURNAL_WRITE_ERRORS.inc()
        try:
            rows = self._db.execute("SELECT seq, alert FROM outbox ORDER BY seq").fetchall()
        except sqlite3.Error as read_exc:
            log.error("alert journal %s cannot be read either (%s): the alerts it held are not delivered", self.path,
                      read_exc)  # fmt: skip
            rows = []
        held = self._held = {seq: Alert.model_validate_json(text) for seq, text in rows}
        self._retry_at = time.monotonic() + RETRY_JOURNAL_S
        ALERT_JOURNAL_DEGRADED.set(1)
        log.error("alert journal %s cannot be written (%s): waiting alerts are held in memory (up to %d, the oldest "
                  "dropped beyond that) and are lost if the daemon stops before it can be written again; free space on "
                  "its disk or fix the file", self.path, exc, self.capacity)  # fmt: skip
        return held

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Everything written inside reaches the journal, or none of it does."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.rollback()
            raise
