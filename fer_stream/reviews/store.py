"""Verdicts and snoozes on disk: a small SQLite file beside the alert outbox, shared by every daemon of the host.

Written in WAL mode with ``synchronous=NORMAL``: a committed verdict survives the
daemon being killed (SIGKILL), and daemons with other config files on the same
host read and write the same file (a busy file is waited for). Every review is
kept, with whether it has reached Redis yet; the latest one of an episode is
its verdict. The episodes this daemon saw start are kept too, so a review names
the episode's camera, emotion and start without asking Redis.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fer_stream.alerts.message import Alert
from fer_stream.reviews.message import Review

SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, review_id TEXT UNIQUE NOT NULL, episode_id TEXT NOT NULL,
    review TEXT NOT NULL, published INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS reviews_episode ON reviews (episode_id, seq);
CREATE TABLE IF NOT EXISTS episodes (episode_id TEXT PRIMARY KEY, camera TEXT NOT NULL, emotion TEXT NOT NULL,
    started_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snoozes (camera TEXT PRIMARY KEY, until REAL NOT NULL, by TEXT NOT NULL, at REAL NOT NULL);
"""
#: How long a write waits for another daemon holding the file.
BUSY_TIMEOUT_MS = 5000
#: Episodes remembered for reviews (the oldest are forgotten beyond; the alert stream still names them).
MAX_EPISODES = 100_000


class ReviewStoreError(OSError):
    """The file cannot be opened; the message names it and the setting to change."""


@dataclass(frozen=True, slots=True)
class EpisodeRef:
    """What a review needs to know of its episode."""

    episode_id: str
    camera: str
    emotion: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Snooze:
    camera: str
    until: float  # epoch seconds
    by: str  # the role (and name) that asked
    at: float


class ReviewStore:
    """Thread-safe: the console's threads, the supervisor and the review publisher share one connection under a lock."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None keeps everything in memory (tests)."""
        self.path = path
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False,
                                       isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ReviewStoreError(f"alerts.reviews.path {path}: cannot open the review file ({exc}); "
                                   "point it at a writable file") from None  # fmt: skip
        self._lock = threading.Lock()

    def remember_episode(self, alert: Alert) -> None:
        """An episode started here: keep what a later review of it names."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO episodes VALUES (?, ?, ?, ?)",
                             (alert.episode_id, alert.camera, alert.emotion, alert.started_at.isoformat()))  # fmt: skip
            self._db.execute("DELETE FROM episodes WHERE rowid <= (SELECT MAX(rowid) FROM episodes) - ?", (MAX_EPISODES,))

    def episode(self, episode_id: str) -> EpisodeRef | None:
        with self._lock:
            row = self._db.execute("SELECT camera, emotion, started_at FROM episodes WHERE episode_id = ?",
                                   (episode_id,)).fetchone()  # fmt: skip
        return None if row is None else EpisodeRef(episode_id, row[0], row[1], datetime.fromisoformat(row[2]))

    def add(self, review: Review) -> None:
        """Keep a review (committed before this returns), waiting to be published."""
        from fer_stream.metrics import REVIEWS

        with self._lock:
            self._db.execute("INSERT INTO reviews (review_id, episode_id, review) VALUES (?, ?, ?)",
                             (review.review_id, review.episode_id, review.to_json()))  # fmt: skip
        REVIEWS.labels(camera=review.camera, verdict=review.verdict).inc()

    def verdicts(self, episode_ids: Iterable[str]) -> dict[str, Review]:
        """The latest review of each of these episodes that has one."""
        ids = list(dict.fromkeys(episode_ids))
        found: dict[str, Review] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT episode_id, review FROM reviews WHERE seq IN (SELECT MAX(seq) FROM reviews "
                    f"WHERE episode_id IN ({marks}) GROUP BY episode_id)", chunk).fetchall()  # fmt: skip
                found.update((episode_id, Review.model_validate_json(text)) for episode_id, text in rows)
        return found

    def unpublished(self, limit: int = 100) -> list[tuple[int, Review]]:
        """Reviews not yet in Redis, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, review FROM reviews WHERE published = 0 ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()  # fmt: skip
        return [(seq, Review.model_validate_json(text)) for seq, text in rows]

    def mark_published(self, seq: int) -> None:
        with self._lock:
            self._db.execute("UPDATE reviews SET published = 1 WHERE seq = ?", (seq,))

    def snooze(self, camera: str, until: float, by: str, at: float) -> None:
        """Hold back the camera's new episodes until ``until`` (epoch seconds); an ``until`` in the past ends it."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO snoozes VALUES (?, ?, ?, ?)", (camera, until, by, at))

    def snoozes(self) -> dict[str, Snooze]:
        with self._lock:
            rows = self._db.execute("SELECT camera, until, by, at FROM snoozes").fetchall()
        return {row[0]: Snooze(*row) for row in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
