"""The review event (schema version 1): an operator's verdict on one alert episode, published for integrations.

``review.schema.json`` beside this file is the public contract; tests check that
every event this model produces validates against it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer, field_validator

SCHEMA_VERSION = 1
SCHEMA_FILE = "review.schema.json"
Verdict = Literal["confirmed", "dismissed"]
#: The console roles that may review (fer_stream/http/access.py): a viewer may not.
ReviewerRole = Literal["reviewer", "admin", "local"]
#: The reasons the console offers for a dismissal; any other short text is accepted too.
REASONS = ("not angry", "disgust", "talking", "not a face")
MAX_REASON = 200
MAX_NAME = 64


class Reviewer(BaseModel):
    """Who gave the verdict: the role of the credential used, and the name the reviewer typed (self-declared)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: ReviewerRole
    name: str | None = Field(None, max_length=MAX_NAME)


class Review(BaseModel):
    """A verdict on an episode. The latest review of an episode is its verdict; earlier ones stay in the log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    review_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    episode_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    camera: str = Field(min_length=1)
    emotion: str = Field(min_length=1)
    started_at: AwareDatetime = Field(description="the episode's start (its alert's started_at)")
    verdict: Verdict
    reason: str | None = Field(None, max_length=MAX_REASON, description="why, e.g. one of REASONS; free text allowed")
    reviewer: Reviewer
    reviewed_at: AwareDatetime
    host: str

    @field_validator("reason", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("started_at", "reviewed_at")
    @classmethod
    def _millisecond_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)

    @field_serializer("started_at", "reviewed_at")
    def _utc_iso(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_json(self) -> str:
        return self.model_dump_json()


@cache
def json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of a review event."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
