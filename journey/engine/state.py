"""Per-customer journey state: compact, versioned, and serialisable to JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

STATE_VERSION = 1


@dataclass(slots=True)
class JourneyPosition:
    """Where a customer stands in one journey definition."""

    stage: str | None = None
    entered_ms: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "entered_ms": self.entered_ms}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JourneyPosition:
        return cls(stage=raw.get("stage"), entered_ms=dict(raw.get("entered_ms", {})))


@dataclass(slots=True)
class CustomerState:
    """Everything the engine remembers about one customer."""

    customer_id: str
    touches: int = 0
    purchases: int = 0
    spend: float = 0.0
    first_touch_ms: int | None = None
    last_touch_ms: int | None = None
    journeys: dict[str, JourneyPosition] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "customer_id": self.customer_id,
            "touches": self.touches,
            "purchases": self.purchases,
            "spend": self.spend,
            "first_touch_ms": self.first_touch_ms,
            "last_touch_ms": self.last_touch_ms,
            "journeys": {k: p.to_dict() for k, p in sorted(self.journeys.items())},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CustomerState:
        return cls(
            customer_id=raw["customer_id"],
            touches=raw.get("touches", 0),
            purchases=raw.get("purchases", 0),
            spend=raw.get("spend", 0.0),
            first_touch_ms=raw.get("first_touch_ms"),
            last_touch_ms=raw.get("last_touch_ms"),
            journeys={k: JourneyPosition.from_dict(v) for k, v in raw.get("journeys", {}).items()},
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerState:
        return cls.from_dict(orjson.loads(data))
