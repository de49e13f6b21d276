"""The records on every topic: pydantic models, the single source of the JSON Schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal[1] = 1

CustomerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$"),
    Field(description="The platform's id of the person; 1-128 characters, no edge whitespace."),
]
EventType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$"),
    Field(description="Event type, snake_case; see the vocabulary in journey.vocabulary."),
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Touchpoint(_Record):
    """One contact of a person with the company, as the platform reports it."""

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Version of this contract.")
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Idempotency key: the same event sent twice carries the same id."
    )
    customer_id: CustomerId
    type: EventType
    occurred_at: AwareDatetime = Field(description="Event time, ISO 8601 with a UTC offset.")
    channel: Label | None = Field(None, description="Where it happened: email, facebook, store…")
    source: Label | None = Field(None, description="Traffic source, for first-touch attribution.")
    campaign: Label | None = None
    amount: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Money amount for commerce events; finite and not negative."
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        None, description="ISO 4217 code of amount."
    )
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="The person's IANA time zone, e.g. Europe/Warsaw (for quiet hours)."
    )
    properties: dict[str, Any] = Field(
        default_factory=dict, description="Free-form details: product, tier, sentiment…"
    )


class StageChanged(_Record):
    """A customer moved from one stage of a journey to another."""

    schema_version: Literal[1] = SCHEMA_VERSION
    change_id: str = Field(description="Deterministic id: the same input gives the same id.")
    customer_id: CustomerId
    journey: str
    from_stage: str | None = Field(description="None when the customer enters the journey.")
    to_stage: str
    cause_event_id: str = Field(description="event_id of the touchpoint that caused it.")
    occurred_at: AwareDatetime = Field(description="Event time of the change.")
    seconds_in_previous_stage: float | None = Field(
        None, description="Event-time seconds spent in from_stage; None on entry."
    )


class TriggerEmitted(_Record):
    """A request for a downstream sender to act on one customer."""

    schema_version: Literal[1] = SCHEMA_VERSION
    trigger_id: str = Field(
        description="Deterministic id of the episode; consumers deduplicate on it."
    )
    customer_id: CustomerId
    journey: str
    rule: str = Field(description="Name of the rule that fired.")
    kind: Literal["marketing", "service"] = Field(
        "marketing", description="Service triggers are exempt from marketing opt-out."
    )
    reason: str = Field(description="Machine-readable reason code.")
    details: dict[str, Any] = Field(default_factory=dict, description="Values that made it fire.")
    occurred_at: AwareDatetime = Field(description="Event time of the episode.")
    valid_until: AwareDatetime | None = Field(None, description="Offer expiry, if any.")
    stage: str | None = None
    channel: str | None = Field(None, description="Preferred channel to reach the customer.")


class DeadLetter(_Record):
    """A record that could not be accepted, with why and its original bytes."""

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: str = Field(description="Stable machine-readable reason code, e.g. invalid_json.")
    message: str = Field(description="Human explanation naming the field at fault.")
    field: str | None = Field(None, description="Dotted path of the offending field, if any.")
    source_topic: str
    source_partition: int
    source_offset: int
    original_key_b64: str | None = Field(None, description="Original key bytes, base64.")
    original_value_b64: str = Field(description="Original value bytes, base64, unchanged.")
    dead_lettered_at: datetime = Field(description="Wall-clock time the worker rejected it.")
