"""The records on every topic: pydantic models, the single source of the JSON Schemas."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from journey.engine.outputs import Decision, Temperature, TriggerKind

SCHEMA_VERSION: Literal[1] = 1

CustomerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$"),
    Field(description="The platform's id of the person; 1-128 characters, no edge whitespace."),
]
EventType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$"),
    Field(description="Event type, snake_case; see the vocabulary in journey.engine.vocabulary."),
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _iso_time(value: Any) -> Any:
    """Event time is ISO 8601 text; a number (or digits in a string) is refused, not guessed.

    Parsed here so that strict JSON validation gets a datetime and checks its offset.
    """
    if not isinstance(value, str):
        return value  # strict validation names the wrong type
    if value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO 8601 time with a UTC offset, not epoch seconds")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO 8601 time") from None
    return value


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):  # True == 1 in Python; in the contract it is not a version
        raise ValueError("must be the number 1, not a boolean")
    return value


@lru_cache(maxsize=4096)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _iana_zone(value: str) -> str:
    if not _known_zone(value):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Warsaw)")
    return value


EventTime = Annotated[AwareDatetime, BeforeValidator(_iso_time)]
TimeZone = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana_zone)
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Touchpoint(_Record):
    """One contact of a person with the company, as the platform reports it."""

    schema_version: Annotated[Literal[1], BeforeValidator(_not_a_boolean)] = Field(
        SCHEMA_VERSION, description="Version of this contract."
    )
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Idempotency key: the same event sent twice carries the same id."
    )
    customer_id: CustomerId
    type: EventType
    occurred_at: EventTime = Field(description="Event time, ISO 8601 with a UTC offset.")
    channel: Label | None = Field(None, description="Where it happened: email, facebook, store…")
    source: Label | None = Field(None, description="Traffic source, for first-touch attribution.")
    campaign: Label | None = None
    amount: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Money amount for commerce events; finite and not negative."
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        None, description="ISO 4217 code of amount."
    )
    timezone: TimeZone | None = Field(
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
    episode: str = Field(
        description="What fired it (an event id, 'once', or a detection and its anchor); "
        "trigger_id is a hash of customer, journey, rule and episode."
    )
    kind: TriggerKind = Field(
        "marketing", description="Service triggers are exempt from marketing opt-out."
    )
    reason: str = Field(description="Machine-readable reason code.")
    details: dict[str, Any] = Field(default_factory=dict, description="Values that made it fire.")
    occurred_at: AwareDatetime = Field(description="Event time of the episode.")
    valid_until: AwareDatetime | None = Field(None, description="Offer expiry, if any.")
    send_at: AwareDatetime | None = Field(
        None, description="Earliest time to act (after holds, delays and quiet hours)."
    )
    offer_code: str | None = Field(
        None, description="Personal offer code, unique per customer and trigger."
    )
    priority: int = Field(50, description="Higher wins when triggers compete for a customer.")
    stage: str | None = Field(None, description="The customer's stage in this journey.")
    status: str | None = Field(None, description="Lifecycle status: lead, customer, regular…")
    temperature: Temperature | None = None
    score: float | None = Field(None, description="Readiness score in this journey, decayed.")
    channel: str | None = Field(None, description="Preferred channel to reach the customer.")


class TriggerAudited(_Record):
    """A trigger not sent now, and why: held back by the policy, or cancelled by an exit.

    Suppressed, deferred or held out by the trigger policy; cancelled by a journey's exit
    criteria (conversion goal), with the exit's name as the reason.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    trigger_id: str
    customer_id: CustomerId
    journey: str
    rule: str
    kind: TriggerKind = "marketing"
    decision: Decision
    reason: str = Field(
        description="Why, e.g. opted_out, contact_budget, quiet_hours; for cancelled, the "
        "name of the journey's exit that cancelled it."
    )
    occurred_at: AwareDatetime = Field(description="Event time of the episode.")
    decided_at: AwareDatetime | None = Field(None, description="Event time of the decision.")
    deferred_until: AwareDatetime | None = Field(None, description="For deferred: when next.")


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
    dead_lettered_at: AwareDatetime = Field(
        description="Wall-clock time the worker rejected it."
    )


class CustomerErased(_Record):
    """A customer's data was erased (GDPR article 17): downstream systems erase theirs too.

    Carries the customer id and times only. The worker tombstones the customer's state,
    drops their pending triggers, and keeps a marker (id and erased_at) so that events dated
    at or before erased_at, replayed or late, do not bring the profile back.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    erasure_id: str = Field(description="Deterministic id: the erasure request's event id.")
    customer_id: CustomerId
    erased_at: AwareDatetime = Field(
        description="Event time of the request; older events of this customer are dropped."
    )
    requested_via: str | None = Field(None, description="Channel of the request, e.g. api.")
    pending_triggers_dropped: int = Field(description="Triggers waiting for release, dropped.")
