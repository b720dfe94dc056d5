"""The alert message (schema version 2): one type from the camera worker's rules, through the supervisor's queue, to Redis.

``alert.schema.json`` beside this file is the public contract for subscribers;
tests check that every message this model produces validates against it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

SCHEMA_VERSION = 2
SCHEMA_FILE = "alert.schema.json"
#: Why an episode ended (``end_reason`` of an ``end`` event).
EndReason = Literal["calm", "face_lost", "camera_stopped", "daemon_stopped"]
#: The only form a snapshot reference takes: a path on the daemon's HTTP server, never a URL of anywhere else.
SNAPSHOT_PATH = r"^/snapshots/[0-9a-f]{32}-(start|end)(-face)?\.jpg$"
#: Scores are published with this many decimals: more is noise, and a message diff stays readable.
SCORE_DECIMALS = 3


class Box(BaseModel):
    """Face box in frame pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: int
    y: int
    w: int = Field(ge=0)
    h: int = Field(ge=0)


class FrameSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(gt=0)
    height: int = Field(gt=0)


class ModelRef(BaseModel):
    """Which model's opinion this was: an operator can tell alerts of two model releases apart."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    id: str
    version: str


class Snapshot(BaseModel):
    """Where the console serves an event's pictures (paths on the daemon's HTTP server)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: str = Field(pattern=SNAPSHOT_PATH, description="the whole frame with the face boxed, e.g. /snapshots/<episode_id>-start.jpg")
    face: str | None = Field(None, pattern=SNAPSHOT_PATH, description="the face alone; null when faces are blurred for viewers")


class Alert(BaseModel):
    """One event of an episode of a watched emotion on one tracked face: its start, periodic updates, its end.

    Every event of an episode carries the same ``episode_id``. ``event_at`` of a
    start event is the capture time of the frame whose classification completed
    the rule (the latency histogram measures from it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[2] = 2
    alert_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    episode_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    event: Literal["start", "update", "end"]
    end_reason: EndReason | None = Field(None, description="set on end events only")
    camera: str = Field(min_length=1)
    track_id: int = Field(ge=0)
    emotion: str = Field(min_length=1)
    score: float = Field(ge=0, le=1, description="smoothed probability at event_at")
    peak_score: float = Field(ge=0, le=1, description="highest smoothed probability in the episode so far")
    mean_score: float = Field(ge=0, le=1, description="mean smoothed probability over the episode's observations")
    duration_s: float = Field(ge=0, description="event_at - started_at")
    started_at: AwareDatetime = Field(description="capture time of the first frame at or above enter_threshold")
    event_at: AwareDatetime
    box: Box
    frame: FrameSize
    model: ModelRef
    host: str
    shard: str | None = Field(None, pattern=r"^\d+/\d+$", description="the daemon's shard of the cameras (I/N); null: all")
    snapshot: Snapshot | None = Field(None, description="the event's pictures; null when none were kept")

    @field_validator("score", "peak_score", "mean_score", "duration_s")
    @classmethod
    def _rounded(cls, value: float) -> float:
        return round(value, SCORE_DECIMALS)

    @model_validator(mode="after")
    def _reason_with_end(self) -> Self:
        if (self.event == "end") != (self.end_reason is not None):
            raise ValueError("end_reason is given on end events, and only on them")
        return self

    @field_validator("started_at", "event_at")
    @classmethod
    def _millisecond_utc(cls, value: datetime) -> datetime:
        """Times are kept as they are published (UTC, milliseconds) so a message survives a round trip unchanged."""
        return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)

    @field_serializer("started_at", "event_at")
    def _utc_iso(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Alert:
        return cls.model_validate_json(text)


def utc_from_epoch(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


@cache
def json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of an alert message."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
