"""What the engine asks the shell to publish: stage changes, triggers and suppressions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

#: A marketing trigger needs consent and obeys the contact budget; a service one does not.
TriggerKind = Literal["marketing", "service"]
#: What the policy did with a trigger it did not send now.
Decision = Literal["suppressed", "deferred", "held_out", "cancelled"]
#: How well a contact knows the business (the built-in journey "temperature").
Temperature = Literal["cold", "warm", "hot"]


def stable_id(*parts: str) -> str:
    """A deterministic id from its parts: replaying the same input yields the same id."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(slots=True)
class StageChange:
    """A move in a journey; journey "lifecycle" carries lifecycle status changes."""

    customer_id: str
    journey: str
    from_stage: str | None
    to_stage: str
    cause_event_id: str
    at_ms: int
    ms_in_previous_stage: int | None

    @property
    def change_id(self) -> str:
        return stable_id("stage", self.customer_id, self.journey, str(self.from_stage),
                         self.to_stage, self.cause_event_id)


@dataclass(slots=True)
class TriggerRequest:
    """A rule fired. The trigger policy decides whether, when and how it is sent."""

    customer_id: str
    journey: str
    rule: str
    reason: str
    episode: str
    at_ms: int
    kind: TriggerKind = "marketing"
    priority: int = 50
    stage: str | None = None
    status: str | None = None
    temperature: Temperature | None = None
    score: float | None = None
    channel: str | None = None
    valid_for_ms: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: set by the policy on release: when a sender may act, and the personal offer code
    send_at_ms: int | None = None
    offer_code: str | None = None
    trigger_id: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.trigger_id:
            self.trigger_id = stable_id(
                "trigger", self.customer_id, self.journey, self.rule, self.episode)

    def released(self, send_at_ms: int, offer_code: str) -> TriggerRequest:
        return TriggerRequest(
            self.customer_id, self.journey, self.rule, self.reason, self.episode, self.at_ms,
            self.kind, self.priority, self.stage, self.status, self.temperature, self.score,
            self.channel, self.valid_for_ms, self.details, send_at_ms, offer_code,
            self.trigger_id)

    @property
    def valid_until_ms(self) -> int | None:
        return None if self.valid_for_ms is None else self.at_ms + self.valid_for_ms

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if name != "trigger_id"}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TriggerRequest:
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass(slots=True)
class TriggerSuppressed:
    """The policy did not send a trigger now: suppressed, deferred (until_ms) or held out.
    Recorded for audit; a deferred trigger is released later with the same id."""

    request: TriggerRequest
    reason: str
    decision: Decision = "suppressed"
    at_ms: int | None = None
    until_ms: int | None = None

    @property
    def customer_id(self) -> str:
        return self.request.customer_id


Output = StageChange | TriggerRequest | TriggerSuppressed
