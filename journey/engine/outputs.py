"""What the engine asks the shell to publish: stage changes, triggers and suppressions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def stable_id(*parts: str) -> str:
    """A deterministic id from its parts: replaying the same input yields the same id."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """A rule fired. The trigger policy decides whether, when and how it is sent."""

    customer_id: str
    journey: str
    rule: str
    reason: str
    episode: str
    at_ms: int
    kind: str = "marketing"
    priority: int = 50
    stage: str | None = None
    status: str | None = None
    temperature: str | None = None
    score: float | None = None
    channel: str | None = None
    valid_for_ms: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def trigger_id(self) -> str:
        return stable_id("trigger", self.customer_id, self.journey, self.rule, self.episode)


@dataclass(frozen=True, slots=True)
class TriggerSuppressed:
    """The policy held a trigger back; recorded for audit, never sent."""

    request: TriggerRequest
    reason: str

    @property
    def customer_id(self) -> str:
        return self.request.customer_id


Output = StageChange | TriggerRequest | TriggerSuppressed
