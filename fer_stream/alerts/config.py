"""The ``redis:`` and ``alerts:`` sections of the camera YAML (a camera's ``alert_rules:`` overrides them, config/models.py).

These models mirror the YAML one to one (unknown keys are refused). Secrets never
live here: the Redis password is read from the environment variable named by
``redis.password_env`` at connect time, so it cannot leak through a dump or repr
of the config.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from fer_stream.redaction import mask_secrets, redact_url, url_secrets

#: Environment variable that, when set, replaces ``redis.url`` (deployment beats file).
REDIS_URL_ENV = "FER_STREAM_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_FORM = "redis://[user@]host[:port][/db], rediss://[user@]host[:port][/db] (TLS) or unix:///path/to/redis.sock"


def check_redis_url(url: str) -> str:
    """Return ``url`` if it is a usable Redis URL, else raise ValueError saying the expected form."""
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:  # urllib quotes what it read as the port: a password cut short by '#' or '?'
        parts, port, problem = None, None, mask_secrets(str(exc), url_secrets(url))
    if parts is not None:
        if parts.scheme not in ("redis", "rediss", "unix"):
            problem = f"scheme {parts.scheme or '(none)'!r} is not redis, rediss or unix"
        elif parts.scheme == "unix":
            if not parts.path:
                problem = "a unix:// URL needs the socket path"
        elif not parts.hostname:
            problem = "no host"
        elif parts.path not in ("", "/") and not parts.path.lstrip("/").isdigit():
            problem = f"database {parts.path.lstrip('/')!r} is not a number"
        elif port == 0:
            problem = "port 0"
    if problem:
        raise ValueError(f"malformed Redis URL {redact_url(url)!r} ({problem}); expected {REDIS_URL_FORM}")
    return url


class RedisTLS(BaseModel):
    """Options for ``rediss://`` URLs (ignored otherwise, and refused when set on a plain URL)."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = Field(None, description="CA bundle to verify the server; system CAs when unset")
    cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    key_file: Path | None = Field(None, description="client key for mutual TLS")
    verify: bool = Field(True, description="verify the server certificate and host name; false only for tests")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be set together (mutual TLS needs both)")
        return self


class RedisConfig(BaseModel):
    """Where alerts go. The URL may come from ``FER_STREAM_REDIS_URL``, which wins over the file."""

    # The URL may carry a password: validation errors must not echo their input.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(DEFAULT_REDIS_URL, description=f"Redis URL: {REDIS_URL_FORM}; env {REDIS_URL_ENV} overrides it")
    username: str | None = Field(None, description="ACL user name (Redis 6+); the password comes from password_env")
    password_env: str = Field(
        "FER_STREAM_REDIS_PASSWORD", description="name of the environment variable that holds the Redis password"
    )
    tls: RedisTLS = Field(default_factory=RedisTLS)
    connect_timeout_s: float = Field(2.0, gt=0, description="TCP/TLS connect timeout")
    socket_timeout_s: float = Field(2.0, gt=0, description="timeout of one command; a slow Redis counts as down")

    @model_validator(mode="before")
    @classmethod
    def _url_from_environment(cls, data: Any, info: ValidationInfo) -> Any:
        # A command-line --redis beats the environment: it validates with context {"url_from_env": False}.
        if (info.context or {}).get("url_from_env") is False:
            return data
        env_url = os.environ.get(REDIS_URL_ENV)
        if env_url and isinstance(data, dict):
            data = {**data, "url": env_url}
        elif env_url and data is None:
            data = {"url": env_url}
        return data

    @field_validator("url")
    @classmethod
    def _url_is_redis(cls, url: str) -> str:
        try:
            return check_redis_url(url)
        except ValueError as exc:
            source = f" (from the environment variable {REDIS_URL_ENV})" if os.environ.get(REDIS_URL_ENV) == url else ""
            raise ValueError(f"{exc}{source}") from None

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise ValueError(f"{name!r} is not an environment variable name (e.g. FER_STREAM_REDIS_PASSWORD)")
        return name

    @model_validator(mode="after")
    def _tls_only_with_rediss(self) -> Self:
        tls_set = self.tls.model_fields_set
        if tls_set and not self.url.startswith("rediss://"):
            keys = ", ".join(f"tls.{key}" for key in sorted(tls_set))
            raise ValueError(f"{keys}: TLS options need a rediss:// URL; use rediss:// or remove them")
        return self

    def password(self) -> str | None:
        """The password from the environment (read late, so rotating it needs only a restart)."""
        return os.environ.get(self.password_env) or None

    def redacted_url(self) -> str:
        return redact_url(self.url)


EnterScore = Annotated[float, Field(gt=0, le=1)]
#: What an emotion missing from a per-emotion threshold map gets.
GENERIC_ENTER = 0.4
GENERIC_RELEASE = 0.25
#: Chosen by ``fer-stream calibrate`` on ../shared/data/realworld/clips (docs/alerts.md#defaults).
DEFAULT_ENTER = {"angry": 0.4, "fear": 0.125}
DEFAULT_RELEASE = {"angry": 0.25, "fear": 0.078}
DEFAULT_MIN_TOP_SHARE: dict[str, float] = {"angry": 0.7, "fear": 0.0}
TopShare = Annotated[float, Field(ge=0, le=1)]
ReleaseScore = Annotated[float, Field(ge=0, lt=1)]


def _per_emotion(value: Any) -> Any:
    """Emotion names of a per-emotion threshold map, lower-cased like ``watched``."""
    if isinstance(value, dict):
        return {str(name).strip().lower(): score for name, score in value.items()}
    return value


def _normalised_emotions(watched: list[str]) -> list[str]:
    names = [name.strip().lower() for name in watched]
    if not names:
        raise ValueError("watched is empty: name at least one emotion (e.g. [angry, fear]) or set alerts.enabled: false")
    if len(set(names)) != len(names):
        raise ValueError(f"watched lists an emotion twice: {watched}")
    return names


class AlertRules(BaseModel):
    """When a tracked face's expression becomes an alert. Defaults and their reasons: docs/alerts.md."""

    model_config = ConfigDict(extra="forbid")

    watched: list[str] = Field(
        default_factory=lambda: ["angry", "fear"], description="emotions that raise alerts (names from the model's labels)"
    )
    smoothing_half_life_s: float = Field(
        0.5, gt=0, description="half-life of the exponential moving average of each class, in seconds of frame time"
    )
    enter_threshold: EnterScore | dict[str, EnterScore] = Field(
        default_factory=lambda: dict(DEFAULT_ENTER),
        description=f"smoothed probability at which an episode may start: one number, or one per emotion "
        f"({GENERIC_ENTER} for an emotion the map leaves out)",
    )
    release_threshold: ReleaseScore | dict[str, ReleaseScore] = Field(
        default_factory=lambda: dict(DEFAULT_RELEASE),
        description=f"smoothed probability below which an episode ends: one number, or one per emotion "
        f"({GENERIC_RELEASE} for an emotion the map leaves out)",
    )
    min_duration_s: float = Field(0.5, ge=0, description="the smoothed score must stay >= enter_threshold this long")
    min_observations: int = Field(5, ge=1, description="classifications needed above enter_threshold before a start")
    min_top_share: TopShare | dict[str, TopShare] = Field(
        default_factory=lambda: dict(DEFAULT_MIN_TOP_SHARE),
        description="share of those classifications whose own top class must be the emotion (consensus; 0 = off): "
        "one number, or one per emotion (0 for an emotion the map leaves out)",
    )
    cooldown_s: float = Field(60.0, ge=0, description="after an episode, no new start for the same camera, track, emotion")
    update_every_s: float = Field(
        10.0, ge=0, description="while an episode lasts, an update event this often (seconds of frame time); 0 = none"
    )
    max_starts_per_hour: int | None = Field(
        None, ge=1, description="at most this many episode starts of a camera are published in any hour; the rest are "
        "held back and counted (null = no cap)",
    )

    @field_validator("watched")
    @classmethod
    def _watched_names(cls, watched: list[str]) -> list[str]:
        return _normalised_emotions(watched)

    @field_validator("enter_threshold", "release_threshold", "min_top_share", mode="before")
    @classmethod
    def _emotion_keys(cls, value: Any) -> Any:
        return _per_emotion(value)

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        for emotion in self.watched:
            enter, release = self.enter_for(emotion), self.release_for(emotion)
            if release >= enter:
                raise ValueError(
                    f"release_threshold ({release}) must be below enter_threshold ({enter}) for {emotion}: "
                    "the gap between them is what stops an episode flickering on and off"
                )
        return self

    def enter_for(self, emotion: str) -> float:
        threshold = self.enter_threshold
        return threshold.get(emotion, GENERIC_ENTER) if isinstance(threshold, dict) else threshold

    def top_share_for(self, emotion: str) -> float:
        share = self.min_top_share
        return share.get(emotion, 0.0) if isinstance(share, dict) else share

    def release_for(self, emotion: str) -> float:
        threshold = self.release_threshold
        return threshold.get(emotion, GENERIC_RELEASE) if isinstance(threshold, dict) else threshold


def state_directory() -> Path:
    """Where the daemon keeps state between runs: $STATE_DIRECTORY (systemd), $XDG_STATE_HOME/fer-stream, or ~/.local/state."""
    state = os.environ.get("STATE_DIRECTORY") or (
        str(Path(os.environ["XDG_STATE_HOME"]) / "fer-stream") if os.environ.get("XDG_STATE_HOME") else None
    )
    return Path(state.split(":")[0]) if state else Path("~/.local/state/fer-stream").expanduser()


def _config_key(config_file: Path | None) -> str:
    """Tells the state of two daemons with different config files apart."""
    return hashlib.sha256(str(config_file.resolve() if config_file else "").encode()).hexdigest()[:12]


def _anchored(path: Path | None, info: ValidationInfo) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    base = (info.context or {}).get("base_dir")
    return Path(os.path.normpath(Path(base) / path)) if base is not None and not path.is_absolute() else path


class SnapshotSettings(BaseModel):
    """The ``alerts.snapshots:`` section: pictures of each alert's start and end, for the console and scripts."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false = keep no pictures at all (alerts carry snapshot: null)")
    directory: Path | None = Field(
        None, description="null = the state directory (as for the outbox), folder snapshots: the same for every config "
        "file, so a renamed or copied config serves the pictures kept before"
    )
    max_mb: float = Field(200.0, gt=0, description="the pictures never take more than this; the oldest go first")
    retention_h: float = Field(72.0, gt=0, description="pictures older than this are removed and no longer served")

    @field_validator("directory")
    @classmethod
    def _anchor(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _anchored(path, info)

    def path(self) -> Path:
        return self.directory or state_directory() / "snapshots"


class ReviewSettings(BaseModel):
    """The ``alerts.reviews:`` section: operators' verdicts on episodes, kept on disk and published to Redis."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field("fer:reviews", min_length=1, description="pub/sub channel of review events")
    stream: str = Field("fer:reviews:log", min_length=1, description="capped Redis Stream of review events")
    stream_maxlen: int = Field(100_000, ge=1, description="approximate cap of the review stream (XADD MAXLEN ~)")
    path: Path | None = Field(
        None, description="the review file (SQLite); null = reviews.sqlite3 beside the outbox journal, shared by "
        "every config file of the host",
    )

    @field_validator("path")
    @classmethod
    def _anchor(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _anchored(path, info)


class AlertsConfig(BaseModel):
    """The ``alerts:`` section: where alerts go inside Redis, how many may wait, and the global rules."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    channel: str = Field("fer:alerts", min_length=1, description="pub/sub channel for live subscribers")
    stream: str = Field("fer:alerts:log", min_length=1, description="capped Redis Stream kept for replay")
    stream_maxlen: int = Field(10_000, ge=1, description="approximate cap of the stream (XADD MAXLEN ~)")
    outbox_size: int = Field(
        1_000, ge=1, le=1_000_000, description="alerts kept while Redis is down; the oldest go first beyond it"
    )
    durable_outbox: bool = Field(True, description="keep waiting alerts in a journal file, so a restart loses none")
    outbox_path: Path | None = Field(
        None, description="the journal (SQLite); null = $STATE_DIRECTORY, $XDG_STATE_HOME/fer-stream or "
        "~/.local/state/fer-stream, file outbox-<hash of the config file's path>.sqlite3"
    )
    dedupe_ttl_s: int = Field(
        86_400, ge=60, description="how long Redis remembers a delivered alert id, so a retried alert is not added twice"
    )
    rules: AlertRules = Field(default_factory=AlertRules)
    snapshots: SnapshotSettings = Field(default_factory=SnapshotSettings)
    reviews: ReviewSettings = Field(default_factory=ReviewSettings)

    @field_validator("outbox_path")
    @classmethod
    def _anchor(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _anchored(path, info)

    def journal_path(self, config_file: Path | None) -> Path | None:
        """Where waiting alerts are kept (None: in memory only)."""
        if not self.durable_outbox:
            return None
        if self.outbox_path is not None:
            return self.outbox_path
        return state_directory() / f"outbox-{_config_key(config_file)}.sqlite3"

    def reviews_path(self) -> Path:
        """The review file: set, or beside the outbox journal (its configured directory, else the state directory)."""
        if self.reviews.path is not None:
            return self.reviews.path
        return (self.outbox_path.parent if self.outbox_path is not None else state_directory()) / "reviews.sqlite3"
