"""Follow fer-stream alerts live from Redis, optionally replaying earlier ones from the stream first.

With --since, it subscribes to the channel *before* reading the stream, so an
alert raised meanwhile is seen once: from the replay or live, never both
(duplicates are dropped by alert id). After a lost connection it reconnects and
replays from the stream what it missed.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from datetime import UTC, datetime

import redis
from pydantic import ValidationError

from fer_stream.alerts.config import DEFAULT_REDIS_URL, REDIS_URL_ENV, AlertsConfig, RedisConfig
from fer_stream.alerts.connection import connect, explain, is_setup_error
from fer_stream.alerts.message import Alert

#: Replay after a reconnect starts this much before the estimated moment of the loss (ids dedupe the overlap).
RECONNECT_OVERLAP_MS = 2_000
SEEN_IDS_KEPT = 100_000
REPLAY_PAGE = 500
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = AlertsConfig()
    parser.add_argument(
        "--redis",
        metavar="URL",
        help=f"Redis URL (default: ${REDIS_URL_ENV} or {DEFAULT_REDIS_URL}); the password comes from --password-env",
    )
    parser.add_argument(
        "--password-env", default="FER_STREAM_REDIS_PASSWORD", metavar="VAR", help="environment variable with the password"
    )
    parser.add_argument("--username", help="Redis ACL user")
    parser.add_argument("--channel", default=defaults.channel, help="pub/sub channel (default %(default)s)")
    parser.add_argument("--stream", default=defaults.stream, help="stream to replay from (default %(default)s)")
    parser.add_argument(
        "--since",
        metavar="ID|TIME",
        help="first replay the stream from a stream id (0-0, 1700000000000-0), an ISO time (UTC unless it says), "
        "or a span back from now (30s, 10m, 2h, 1d), then follow live",
    )
    parser.add_argument("--camera", action="append", metavar="NAME", help="only this camera (repeatable)")
    parser.add_argument("--json", action="store_true", help="print each alert as one JSON line")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N alerts (exit 1 if --timeout comes first)")
    parser.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds")


def run(args: argparse.Namespace) -> int:
    try:
        config = _redis_config(args)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"fer-stream alerts: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    follower = _Follower(config, args)
    try:
        return follower.follow(deadline)
    except KeyboardInterrupt:
        return 0
    except redis.RedisError as exc:
        print(f"fer-stream alerts: {explain(exc, config)}", file=sys.stderr)
        return 2 if is_setup_error(exc) else 1
    except ValueError as exc:
        print(f"fer-stream alerts: {exc}", file=sys.stderr)
        return 2


def _redis_config(args: argparse.Namespace) -> RedisConfig:
    data: dict = {"password_env": args.password_env, "username": args.username}
    if args.redis:
        return RedisConfig.model_validate({**data, "url": args.redis}, context={"url_from_env": False})
    return RedisConfig.model_validate(data)


def parse_since(since: str, now_ms: int) -> str:
    """A stream id to replay from; ``now_ms`` is the server's clock, as stream ids are."""
    since = since.strip()
    if re.fullmatch(r"\d+-\d+", since):
        return since
    if since.isdigit():
        return f"{since}-0"
    relative = _RELATIVE.fullmatch(since)
    if relative:
        back_ms = float(relative.group(1)) * _UNITS[relative.group(2)] * 1000
        return f"{max(int(now_ms - back_ms), 0)}-0"
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(
            f"--since {since!r}: expected a stream id (0-0, 1700000000000-0), an ISO time "
            "(2026-11-24T12:00:00Z) or a span back from now (30s, 10m, 2h, 1d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{max(int(moment.timestamp() * 1000), 0)}-0"


def format_line(alert: Alert) -> str:
    when = alert.event_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head = f"{when}  {alert.camera}  track {alert.track_id}  {alert.emotion:<8} {alert.event.upper():<5}"
    return f"{head}  mean {alert.mean_score:.2f}  peak {alert.peak_score:.2f}  {alert.duration_s:.1f}s"


class _Follower:
    def __init__(self, config: RedisConfig, args: argparse.Namespace) -> None:
        self.config = config
        self.args = args
        self.cameras = set(args.camera or [])
        self.printed = 0
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def follow(self, deadline: float | None) -> int:
        resume_from = None
        backoff = 0.2
        first = True
        while not self._done():
            client = connect(self.config)
            subscribed = None
            try:
                pubsub, server_ms, subscribed_at = self._subscribe(client)
                subscribed = (server_ms, subscribed_at)
                if first and self.args.since is not None:
                    resume_from = parse_since(self.args.since, server_ms)
                first = False
                if resume_from is not None:
                    self._replay(client, resume_from)
                backoff = 0.2
                self._listen(pubsub, deadline)
                return 0 if self._done() or self.args.count is None else 1
            except redis.ConnectionError as exc:
                if first or is_setup_error(exc):
                    raise
                if subscribed is not None:  # estimate, on the server's clock, when the connection was lost
                    lost_ms = subscribed[0] + int((time.monotonic() - subscribed[1]) * 1000)
                    resume_from = f"{max(lost_ms - RECONNECT_OVERLAP_MS, 0)}-0"
                print(f"fer-stream alerts: {explain(exc, self.config)}; reconnecting", file=sys.stderr, flush=True)
                if deadline is not None and time.monotonic() + backoff > deadline:
                    return 0 if self.args.count is None else 1
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                client.close()
        return 0

    def _subscribe(self, client: redis.Redis) -> tuple[redis.client.PubSub, int, float]:
        """Subscribe and wait for the confirmation, so nothing published from here on is missed."""
        pubsub = client.pubsub()
        pubsub.subscribe(self.args.channel)
        confirmation = pubsub.get_message(timeout=self.config.socket_timeout_s)
        while confirmation is None or confirmation["type"] != "subscribe":
            confirmation = pubsub.get_message(timeout=self.config.socket_timeout_s)
        seconds, micros = client.time()
        return pubsub, seconds * 1000 + micros // 1000, time.monotonic()

    def _replay(self, client: redis.Redis, start: str) -> None:
        while not self._done():
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
                self.args.stream, min=start, max="+", count=REPLAY_PAGE
            )
            for stream_id, fields in entries:
                payload = fields.get(b"alert")
                if payload is not None:
                    self._emit(payload, f"stream entry {stream_id.decode()}")
                if self._done():
                    return
            if len(entries) < REPLAY_PAGE:
                return
            start = "(" + entries[-1][0].decode()

    def _listen(self, pubsub: redis.client.PubSub, deadline: float | None) -> None:
        while not self._done():
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                return
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if message is not None and message["type"] == "message":
                self._emit(message["data"], f"channel {self.args.channel}")

    def _emit(self, payload: bytes, source: str) -> None:
        try:
            alert = Alert.from_json(payload)
        except ValidationError as exc:
            print(f"fer-stream alerts: skipped a message on {source} that is not an alert: {exc.errors()[0]['msg']}",
                  file=sys.stderr)
            return
        if alert.alert_id in self._seen:
            return
        self._seen[alert.alert_id] = None
        if len(self._seen) > SEEN_IDS_KEPT:
            self._seen.popitem(last=False)
        if self.cameras and alert.camera not in self.cameras:
            return
        print(alert.to_json() if self.args.json else format_line(alert), flush=True)
        self.printed += 1

    def _done(self) -> bool:
        return self.args.count is not None and self.printed >= self.args.count
