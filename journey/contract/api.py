"""The web API's answers: pydantic models, the single source of their JSON Schemas and of the
OpenAPI document (journey/contract/openapi.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from journey.contract.records import SCHEMA_VERSION, CustomerId


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JourneyStanding(_Answer):
    """Where the customer stands in one journey."""

    journey: str
    stage: str | None = Field(description="None: in the journey, no stage reached yet.")
    entered_at: AwareDatetime | None = Field(description="Event time the stage was entered.")
    seconds_in_stage: float | None = Field(
        description="From entered_at to as_of (the customer's latest event time)."
    )
    score: float = Field(description="Readiness score, decayed to as_of.")


class Attribution(_Answer):
    """The customer's first touch and where it came from."""

    at: AwareDatetime
    type: str
    channel: str | None
    source: str | None
    campaign: str | None


class PendingTrigger(_Answer):
    """A fired trigger waiting for its release time."""

    trigger_id: str
    journey: str
    rule: str
    kind: Literal["marketing", "service"] | str
    reason: str
    fired_at: AwareDatetime
    release_at: AwareDatetime
    held_because: list[str] = Field(
        description="rule_delay (the rule's delay), opt_out_hold (marketing waits so a late "
        "opt-out is seen first), deferred (the policy moved it: quiet hours, contact budget)."
    )
    details: dict[str, Any]


class Deadline(_Answer):
    """An upcoming event time at which something fires unless an event comes first."""

    at: AwareDatetime
    fires: str = Field(description="A detection (dormant, inactive_lead, churn_risk, lost, "
                       "complaint, low_season), temperature, or release:<rule>.")
    journey: str


class SentTrigger(_Answer):
    """The last send of one rule's trigger."""

    journey: str
    rule: str
    sent_at: AwareDatetime


class TriggerDecision(_Answer):
    """A recent trigger decision: sent, or withheld and why."""

    at: AwareDatetime = Field(description="Event time of the decision (the send time).")
    journey: str
    rule: str
    trigger_id: str
    outcome: str = Field(description="sent, suppressed, deferred, held_out or cancelled.")
    reason: str = Field(description="For sent, the trigger's reason code; otherwise why it "
                        "was withheld (opted_out, contact_budget, quiet_hours, the exit…).")
    details: dict[str, Any]


class Detection(_Answer):
    """A lifecycle detection that fired for this customer."""

    kind: str
    times: int
    last_anchor: AwareDatetime


class CustomerProfile(_Answer):
    """One customer's journey profile: GET /customers/{id}."""

    schema_version: Literal[1] = SCHEMA_VERSION
    customer_id: CustomerId
    as_of: AwareDatetime = Field(
        description="Event time the answer is taken at: the partition's watermark, or the "
        "customer's latest event when later."
    )
    status: str | None = Field(description="Lifecycle status: lead, customer, regular…")
    status_since: AwareDatetime | None
    temperature: Literal["cold", "warm", "hot"] | str
    opted_out: bool
    touches: int
    purchases: int
    spend: float
    late_events: int
    counts: dict[str, int] = Field(description="Events per type.")
    first_touch: Attribution | None
    journeys: list[JourneyStanding]
    pending_triggers: list[PendingTrigger]
    next_deadlines: list[Deadline]
    last_sent: list[SentTrigger] = Field(description="The last trigger sent per rule.")
    recent_decisions: list[TriggerDecision] = Field(
        description="The last few trigger decisions, sent or withheld, newest last; the "
        "full history is on the triggers and trigger-audit topics."
    )
    detections: list[Detection]


class StagePopulation(_Answer):
    stage: str
    customers: int


class JourneyView(_Answer):
    """A journey definition and its live stage populations: GET /journeys/{name}."""

    name: str
    description: str | None
    stages: list[str]
    populations: list[StagePopulation]
    partitions_counted: list[int] = Field(
        description="Partitions whose owner answered; the populations cover only these."
    )
    partitions_missing: list[int] = Field(
        description="Partitions no worker answered for (rebalancing, or a worker down)."
    )


class JourneyList(_Answer):
    journeys: list[JourneyView]


class ErrorBody(_Answer):
    """Every 4xx and 5xx answer of the web API."""

    error: str = Field(description="Stable machine-readable code, e.g. not_found.")
    message: str


class ErasureAccepted(_Answer):
    """DELETE /customers/{id}: the erasure request is on the touchpoints topic."""

    customer_id: CustomerId
    event_id: str
    requested_at: AwareDatetime


class Health(_Answer):
    status: Literal["ok", "failing"]
    reason: str | None = None
    checks: dict[str, Any]
