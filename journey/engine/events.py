"""The engine's view of an accepted touchpoint: a small slotted record with epoch-ms time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime (exact integer arithmetic)."""
    return (moment - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of an epoch-ms instant."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(slots=True)
class Event:
    """A validated touchpoint. Built by the shell from the contract; trusted by the engine."""

    event_id: str
    customer_id: str
    type: str
    at_ms: int
    channel: str | None = None
    source: str | None = None
    campaign: str | None = None
    amount: float | None = None
    currency: str | None = None
    timezone: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
