"""Per-customer journey state: compact, versioned, and serialisable to JSON bytes.

Version history (from_dict reads every one of them):
  1  the walking skeleton: counters and one lifecycle position.
  2  attribution, purchase gaps, temperature, consent, status, referrals, scores, dedupe.
  3  lifecycle detections belong to the customer: `detected` (kind -> [times, anchor])
     replaces each journey's copy in its position's `fired`. Later, within 3 (absent
     reads as empty): `decisions`, the last trigger decisions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from journey.engine.outputs import Temperature, TriggerRequest

STATE_VERSION = 3
#: How many recent purchase times are kept for gap statistics.
PURCHASE_HISTORY = 16
#: How many recent trigger decisions (sent or withheld) are kept for the lookup.
DECISION_HISTORY = 6


@dataclass(slots=True)
class Touch:
    """A touch worth remembering: the first one, for attribution."""

    at_ms: int
    type: str
    channel: str | None = None
    source: str | None = None
    campaign: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "type": self.type, "channel": self.channel,
                "source": self.source, "campaign": self.campaign}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Touch:
        return cls(raw["at_ms"], raw["type"], raw.get("channel"), raw.get("source"),
                   raw.get("campaign"))


def decay(value: float, from_ms: int, to_ms: int, half_life_ms: int | None) -> float:
    """value, decayed with the half-life from one event time to another (never grows)."""
    if half_life_ms is None or to_ms <= from_ms or value == 0.0:
        return value
    return value * math.pow(0.5, (to_ms - from_ms) / half_life_ms)


@dataclass(slots=True)
class JourneyPosition:
    """Where a customer stands in one journey definition."""

    stage: str | None = None
    entered_ms: dict[str, int] = field(default_factory=dict)
    score: float = 0.0
    score_ms: int = 0
    #: rule name -> [times fired, event time of the last firing]
    fired: dict[str, list[int]] = field(default_factory=dict)

    def score_at(self, at_ms: int, half_life_ms: int | None) -> float:
        return decay(self.score, self.score_ms, at_ms, half_life_ms)

    def add_points(self, points: float, at_ms: int, half_life_ms: int | None) -> None:
        """Add points earned at at_ms; the sum is kept at the latest event time, so the
        result does not depend on the order the events arrived in."""
        if at_ms >= self.score_ms:
            self.score = decay(self.score, self.score_ms, at_ms, half_life_ms) + points
            self.score_ms = at_ms
        else:
            self.score += decay(points, at_ms, self.score_ms, half_life_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "entered_ms": self.entered_ms, "score": self.score,
                "score_ms": self.score_ms, "fired": self.fired}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JourneyPosition:
        return cls(
            stage=raw.get("stage"),
            entered_ms=dict(raw.get("entered_ms", {})),
            score=raw.get("score", 0.0),
            score_ms=raw.get("score_ms", 0),
            fired={k: list(v) for k, v in raw.get("fired", {}).items()},
        )


@dataclass(slots=True)
class CustomerState:
    """Everything the engine remembers about one customer."""

    customer_id: str
    # touches and attribution
    touches: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first_touch: Touch | None = None
    last_touch_ms: int | None = None
    last_channel: str | None = None
    max_event_ms: int = 0
    timezone: str | None = None
    # commerce
    purchases: int = 0
    spend: float = 0.0
    first_purchase_ms: int | None = None
    last_purchase_ms: int | None = None
    purchase_times: list[int] = field(default_factory=list)
    # temperature inputs
    has_contact: bool = False
    referred: bool = False
    subscribed: bool = False
    engagement: float = 0.0
    engagement_ms: int = 0
    temperature: Temperature = "cold"
    temperature_ms: int | None = None
    # consent and lifecycle
    opted_out: bool = False
    consent_ms: int | None = None
    status: str | None = None
    status_ms: int | None = None
    lead_ms: int | None = None
    open_complaint_ms: int | None = None
    #: event time of the last reactivation attempt (a detection), for the "lost" rule
    reactivation_ms: int | None = None
    referrals_unpaid: int = 0
    referrals_rewarded: int = 0
    late_events: int = 0
    # trigger policy
    #: fired triggers waiting for release: (release time, request)
    pending: list[tuple[int, TriggerRequest]] = field(default_factory=list)
    #: send times of recent marketing triggers, for the contact budget
    contacts: list[int] = field(default_factory=list)
    #: "journey/rule" -> send time of the last trigger of that rule
    sent: dict[str, int] = field(default_factory=dict)
    journeys: dict[str, JourneyPosition] = field(default_factory=dict)
    #: lifecycle detection kind -> [times fired, anchor of the last episode]
    detected: dict[str, list[int]] = field(default_factory=dict)
    #: event_id -> event time, for duplicate detection within the horizon
    recent_ids: dict[str, int] = field(default_factory=dict)
    #: the last few trigger decisions, newest last, for the lookup's "why (not)":
    #: [event time, journey, rule, trigger id, outcome (sent or the decision), reason, details]
    decisions: list[list[Any]] = field(default_factory=list)
    #: live holdout lift, kept by the pipeline (journey.pipeline.lift), not by the engine:
    #: "journey/rule" -> [first eligible time, arm (1 held out, 0 treated), converted 0/1]
    lift: dict[str, list[int]] = field(default_factory=dict)

    # ----- derived -----------------------------------------------------------------------
    @property
    def average_spend(self) -> float | None:
        return self.spend / self.purchases if self.purchases else None

    @property
    def mean_gap_ms(self) -> float | None:
        """Mean time between purchases: exact over all purchases, whatever their order."""
        if self.purchases < 2 or self.first_purchase_ms is None or self.last_purchase_ms is None:
            return None
        return (self.last_purchase_ms - self.first_purchase_ms) / (self.purchases - 1)

    @property
    def gap_stddev_ms(self) -> float | None:
        """Standard deviation of the gaps between the recent purchases kept."""
        times = self.purchase_times
        if len(times) < 3:
            return None
        gaps = [b - a for a, b in itertools.pairwise(times)]
        mean = sum(gaps) / len(gaps)
        return math.sqrt(sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1))

    # ----- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        raw = self._fields()
        if self.lift:  # absent without a holdout, so those states are as they were
            raw["lift"] = self.lift
        return raw

    def _fields(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "customer_id": self.customer_id,
            "touches": self.touches,
            "counts": self.counts,
            "first_touch": None if self.first_touch is None else self.first_touch.to_dict(),
            "last_touch_ms": self.last_touch_ms,
            "last_channel": self.last_channel,
            "max_event_ms": self.max_event_ms,
            "timezone": self.timezone,
            "purchases": self.purchases,
            "spend": self.spend,
            "first_purchase_ms": self.first_purchase_ms,
            "last_purchase_ms": self.last_purchase_ms,
            "purchase_times": self.purchase_times,
            "has_contact": self.has_contact,
            "referred": self.referred,
            "subscribed": self.subscribed,
            "engagement": self.engagement,
            "engagement_ms": self.engagement_ms,
            "temperature": self.temperature,
            "temperature_ms": self.temperature_ms,
            "opted_out": self.opted_out,
            "consent_ms": self.consent_ms,
            "status": self.status,
            "status_ms": self.status_ms,
            "lead_ms": self.lead_ms,
            "open_complaint_ms": self.open_complaint_ms,
            "reactivation_ms": self.reactivation_ms,
            "referrals_unpaid": self.referrals_unpaid,
            "referrals_rewarded": self.referrals_rewarded,
            "late_events": self.late_events,
            "pending": [[at, r.to_dict()] for at, r in self.pending],
            "contacts": self.contacts,
            "sent": self.sent,
            "journeys": {k: p.to_dict() for k, p in self.journeys.items()},
            "detected": self.detected,
            "recent_ids": self.recent_ids,
            "decisions": self.decisions,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CustomerState:
        version = raw.get("v", 1)
        if version > STATE_VERSION:
            raise ValueError(
                f"state version {version} is newer than this worker reads ({STATE_VERSION})"
            )
        if version == 1:
            raw = _upgrade_v1(raw)
        if version <= 2:
            raw = _upgrade_v2(raw)
        first = raw.get("first_touch")
        return cls(
            customer_id=raw["customer_id"],
            touches=raw.get("touches", 0),
            counts=dict(raw.get("counts", {})),
            first_touch=None if first is None else Touch.from_dict(first),
            last_touch_ms=raw.get("last_touch_ms"),
            last_channel=raw.get("last_channel"),
            max_event_ms=raw.get("max_event_ms", 0),
            timezone=raw.get("timezone"),
            purchases=raw.get("purchases", 0),
            spend=raw.get("spend", 0.0),
            first_purchase_ms=raw.get("first_purchase_ms"),
            last_purchase_ms=raw.get("last_purchase_ms"),
            purchase_times=list(raw.get("purchase_times", [])),
            has_contact=raw.get("has_contact", False),
            referred=raw.get("referred", False),
            subscribed=raw.get("subscribed", False),
            engagement=raw.get("engagement", 0.0),
            engagement_ms=raw.get("engagement_ms", 0),
            temperature=raw.get("temperature", "cold"),
            temperature_ms=raw.get("temperature_ms"),
            opted_out=raw.get("opted_out", False),
            consent_ms=raw.get("consent_ms"),
            status=raw.get("status"),
            status_ms=raw.get("status_ms"),
            lead_ms=raw.get("lead_ms"),
            open_complaint_ms=raw.get("open_complaint_ms"),
            reactivation_ms=raw.get("reactivation_ms"),
            referrals_unpaid=raw.get("referrals_unpaid", 0),
            referrals_rewarded=raw.get("referrals_rewarded", 0),
            late_events=raw.get("late_events", 0),
            pending=[(at, TriggerRequest.from_dict(r)) for at, r in raw.get("pending", [])],
            contacts=list(raw.get("contacts", [])),
            sent=dict(raw.get("sent", {})),
            journeys={k: JourneyPosition.from_dict(v) for k, v in raw.get("journeys", {}).items()},
            detected={k: list(v) for k, v in raw.get("detected", {}).items()},
            recent_ids=dict(raw.get("recent_ids", {})),
            decisions=[list(d) for d in raw.get("decisions", [])],
            lift={k: list(v) for k, v in raw.get("lift", {}).items()},
        )

    def to_bytes(self) -> bytes:
        # orjson's result keeps its whole growth buffer (~16 KiB) alive; a table holding
        # millions of states must hold only the bytes, so copy them out.
        return bytes(memoryview(orjson.dumps(self.to_dict())))

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerState:
        return cls.from_dict(orjson.loads(data))


def _upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the lifecycle status as the stage of a journey named lifecycle."""
    upgraded = dict(raw)
    journeys = dict(raw.get("journeys", {}))
    lifecycle = journeys.pop("lifecycle", None)
    if lifecycle is not None and lifecycle.get("stage") is not None:
        upgraded["status"] = lifecycle["stage"]
        upgraded["status_ms"] = lifecycle.get("entered_ms", {}).get(lifecycle["stage"])
    upgraded["journeys"] = journeys
    upgraded["max_event_ms"] = raw.get("last_touch_ms") or 0
    if raw.get("purchases"):
        upgraded["has_contact"] = True
    return upgraded


#: The lifecycle detection kinds version 2 knew: the format's own, fixed with it (today's
#: are journey.engine.detections.LIFECYCLE_KINDS).
_LIFECYCLE_KINDS = ("complaint", "inactive_lead", "churn_risk", "dormant", "lost")


def _upgrade_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 kept each lifecycle detection per journey; the customer now owns it. The
    latest episode any journey saw is the customer's, so no episode fires a second time."""
    upgraded = dict(raw)
    detected: dict[str, list[int]] = {}
    for position in raw.get("journeys", {}).values():
        for kind, (times, anchor) in position.get("fired", {}).items():
            if kind not in _LIFECYCLE_KINDS:
                continue
            have = detected.get(kind)
            if have is None or anchor > have[1]:
                detected[kind] = [times, anchor]
    upgraded["detected"] = detected
    return upgraded
