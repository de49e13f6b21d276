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
from datetime import datetime
from zoneinfo import ZoneInfo

from journey.engine.alive import ChurnParams, p_alive, threshold_age
from journey.engine.definitions import DetectionsSpec
from journey.engine.duration import DAY_MS
from journey.engine.events import to_epoch_ms
from journey.engine.policy import zone_of
from journey.engine.state import CustomerState, JourneyPosition, decay

#: Order in which detections due at the same instant are handled.
KINDS = ("complaint", "inactive_lead", "churn_risk", "dormant", "lost", "low_season")


@dataclass(frozen=True, slots=True)
class Due:
    """A pending detection: its deadline, what it is, and the anchor it hangs on."""

    at_ms: int
    kind: str
    anchor: int


def lifecycle_dues(
    spec: DetectionsSpec,
    state: CustomerState,
    churn: ChurnParams | None,
) -> list[Due]:
    """The customer's lifecycle detections that have not fired for their current anchor."""
    fired_by_kind = state.detected
    dues: list[Due] = []
    for due in _candidates(spec, state, churn):
        fired = fired_by_kind.get(due.kind)
        if fired is None or fired[1] != due.anchor:
            dues.append(due)
    return dues


def season_due(
    spec: DetectionsSpec, state: CustomerState, position: JourneyPosition, default_zone: str
) -> Due | None:
    """A journey's next low-season invitation, if it turned them on."""
    if not spec.low_season.enabled:
        return None
    fired = position.fired.get("low_season")
    return low_season_due(spec, state, None if fired is None else fired[1], default_zone)


def _candidates(
    spec: DetectionsSpec, state: CustomerState, churn: ChurnParams | None
) -> list[Due]:
    # Conditions read the customer's facts, not the lifecycle status; the anchor of each
    # episode stops repeats.
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


def low_season_due(
    spec: DetectionsSpec, state: CustomerState, last_anchor: int | None, default_zone: str
) -> Due | None:
    """The next low-season invitation: at the start of the season (or at once, if the
    customer became regular during one), once per season; the season start is the anchor."""
    s = spec.low_season
    times = state.purchase_times
    if state.purchases < s.min_purchases or not times:
        return None
    zone = zone_of(state.timezone, default_zone)
    months = frozenset(s.months)
    # When they became a regular: their k-th purchase, exact while the recent history holds it;
    # otherwise it happened before the oldest purchase kept, and that one will do.
    index = s.min_purchases - 1 - (state.purchases - len(times))
    since = times[index] if index >= 0 else times[0]
    start = _season_start(since, months, zone, containing=True)
    if last_anchor is not None and start <= last_anchor:
        start = _season_start(last_anchor + 1, months, zone, containing=False)
    return Due(max(start, since), "low_season", start)


def _season_start(at_ms: int, months: frozenset[int], zone: ZoneInfo, *, containing: bool) -> int:
    """The start of the season holding at_ms (containing=True), else of the next one."""
    local = datetime.fromtimestamp(at_ms / 1000, tz=zone)
    year, month = local.year, local.month
    if containing and month in months:
        while _prev(year, month)[1] in months:  # walk back to the season's first month
            year, month = _prev(year, month)
        return _month_start(year, month, zone)
    for _ in range(24):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if month in months and _prev(year, month)[1] not in months:
            return _month_start(year, month, zone)
    raise ValueError("a season needs at least one month outside it")


def _prev(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _month_start(year: int, month: int, zone: ZoneInfo) -> int:
    return to_epoch_ms(datetime(year, month, 1, tzinfo=zone))


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
