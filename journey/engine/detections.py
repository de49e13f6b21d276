"""Time-driven detections: who went quiet, when, and what that means, all in event time.

Each detection has a deadline computed from the customer's state alone, so a streaming
worker can keep one timer per customer (re-armed whenever the state changes) and fire it
when its event-time watermark passes the deadline. The "anchor" is the state value the
deadline hangs on (a last purchase time, a lead time, ...): a detection fires once per
anchor, which also makes its trigger id deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from journey.churn.alive import ChurnParams, p_alive, threshold_age
from journey.engine.definitions import DetectionsSpec
from journey.engine.duration import DAY_MS
from journey.engine.state import CustomerState, JourneyPosition, decay

#: Order in which detections due at the same instant are handled.
KINDS = ("complaint", "inactive_lead", "churn_risk", "dormant", "lost")


@dataclass(frozen=True, slots=True)
class Due:
    """A pending detection: its deadline, what it is, and the anchor it hangs on."""

    at_ms: int
    kind: str
    anchor: int


def journey_dues(
    spec: DetectionsSpec,
    state: CustomerState,
    position: JourneyPosition,
    churn: ChurnParams | None,
) -> list[Due]:
    """The detections of one journey that have not fired for their current anchor."""
    dues: list[Due] = []
    for due in _candidates(spec, state, churn):
        fired = position.fired.get(due.kind)
        if fired is None or fired[1] != due.anchor:
            dues.append(due)
    return dues


def _candidates(
    spec: DetectionsSpec, state: CustomerState, churn: ChurnParams | None
) -> list[Due]:
    # Conditions read the customer's facts, not the lifecycle status, so that when several
    # journeys run, each one's detection fires for the same episode (anchors stop repeats).
    found: list[Due] = []
    if spec.complaint.enabled and state.open_complaint_ms is not None:
        found.append(Due(state.open_complaint_ms + spec.complaint.respond_within, "complaint",
                         state.open_complaint_ms))
    if spec.inactive_lead.enabled and state.purchases == 0 and state.lead_ms is not None:
        found.append(Due(state.lead_ms + spec.inactive_lead.after, "inactive_lead",
                         state.lead_ms))
    last = state.last_purchase_ms
    if last is not None:
        if spec.dormant.enabled:
            found.append(Due(last + dormant_after_ms(spec, state), "dormant", last))
        if spec.churn_risk.enabled and churn is not None:
            at = churn_risk_at_ms(churn, state, spec.churn_risk.threshold)
            if at is not None:
                found.append(Due(at, "churn_risk", last))
    attempt = state.reactivation_ms
    if spec.lost.enabled and attempt is not None and (state.last_touch_ms or 0) <= attempt:
        found.append(Due(attempt + spec.lost.after, "lost", attempt))
    return found


def dormant_after_ms(spec: DetectionsSpec, state: CustomerState) -> int:
    """How long after the last purchase this customer counts as sleeping."""
    d = spec.dormant
    gap = state.mean_gap_ms
    if state.purchases >= d.min_purchases and gap is not None and gap > 0:
        return max(d.min_quiet, math.ceil(d.gap_multiplier * gap))
    return d.fallback


def churn_risk_at_ms(params: ChurnParams, state: CustomerState, threshold: float) -> int | None:
    """Event time at which P(alive) falls to the threshold, or None if it never does."""
    first, last = state.first_purchase_ms, state.last_purchase_ms
    if first is None or last is None:
        return None
    unit_ms = params.unit_days * DAY_MS
    x = state.purchases - 1
    t_x = (last - first) / unit_ms
    age = threshold_age(params, x, t_x, threshold)
    if age is None or math.isinf(age):
        return None
    return max(last, first + math.ceil(age * unit_ms))


def p_alive_at(params: ChurnParams, state: CustomerState, at_ms: int) -> float | None:
    first, last = state.first_purchase_ms, state.last_purchase_ms
    if first is None or last is None:
        return None
    unit_ms = params.unit_days * DAY_MS
    return p_alive(params, state.purchases - 1, (last - first) / unit_ms,
                   max(at_ms - first, last - first) / unit_ms)


@dataclass(frozen=True, slots=True)
class TemperatureRules:
    """seed 001 temperature with our cooling choices."""

    hot_engagement: float
    engagement_half_life_ms: int
    cold_after_ms: int

    def at(self, state: CustomerState, at_ms: int) -> str:
        """cold = does not know you (or quiet for cold_after); warm = left contacts or came
        by referral; hot = subscribed and interacting regularly."""
        if state.last_touch_ms is None or at_ms - state.last_touch_ms >= self.cold_after_ms:
            return "cold"
        engaged = decay(state.engagement, state.engagement_ms, at_ms,
                        self.engagement_half_life_ms)
        if state.subscribed and engaged >= self.hot_engagement:
            return "hot"
        if state.has_contact or state.referred:
            return "warm"
        return "cold"

    def next_change_ms(self, state: CustomerState) -> int | None:
        """When the temperature will next change if nothing happens, or None."""
        if state.temperature == "cold" or state.last_touch_ms is None:
            return None
        moments = [state.last_touch_ms + self.cold_after_ms]
        if state.temperature == "hot" and state.engagement > 0:
            ratio = state.engagement / self.hot_engagement
            if ratio > 1:
                moments.append(state.engagement_ms + math.ceil(
                    self.engagement_half_life_ms * math.log2(ratio)) + 1)
        return min(moments)
