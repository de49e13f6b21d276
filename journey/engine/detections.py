"""Time-driven detections: who went quiet, when, and what that means, all in event time.

Each detection has a deadline computed from the customer's state alone, so a streaming
worker can keep one timer per customer (re-armed whenever the state changes) and fire it
when its event-time watermark passes the deadline. The "anchor" is the state value the
deadline hangs on (a last purchase time, a lead time, ...): a detection fires once per
anchor, which also makes its trigger id deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple
from zoneinfo import ZoneInfo

from journey.engine.alive import ChurnParams, p_alive, threshold_age
from journey.engine.duration import DAY_MS
from journey.engine.events import to_epoch_ms
from journey.engine.outputs import TriggerKind
from journey.engine.policy import zone_of
from journey.engine.state import CustomerState

if TYPE_CHECKING:  # the definitions validate rule names against the registry below
    from journey.engine.definitions import DetectionSpec, DetectionsSpec

#: Every detection kind; each has one entry in DETECTIONS and one field in DetectionsSpec.
DetectionKind = Literal["complaint", "inactive_lead", "churn_risk", "dormant", "lost",
                        "low_season"]


class Due(NamedTuple):
    """A pending detection: its deadline, what it is, and the anchor it hangs on. (A named
    tuple: one is made per enabled detection each time a customer's deadlines are read.)"""

    at_ms: int
    kind: DetectionKind
    anchor: int


@dataclass(frozen=True, slots=True)
class Context:
    """What deadlines and details may read besides the settings and the customer's state."""

    churn: ChurnParams | None
    default_zone: str


#: (settings, state, context, anchor it last fired for) -> its next deadline, or None
Deadline = Callable[["DetectionsSpec", CustomerState, Context, int | None], Due | None]
#: (settings, state, context, the due detection) -> the values that made it fire
Details = Callable[["DetectionsSpec", CustomerState, Context, Due], dict[str, object]]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection kind: what it does when it fires, and when it is due."""

    #: the lifecycle status it sets; None: an invitation, not a change of status
    status: str | None
    #: the rule and reason code of the trigger it fires, and the trigger's kind
    rule: str
    reason: str
    trigger: TriggerKind
    #: its settings in a definition's `detections` block
    settings: Callable[[DetectionsSpec], DetectionSpec]
    deadline: Deadline
    details: Details
    #: True: belongs to the customer (journey "lifecycle"); False: each journey's own choice
    lifecycle: bool = True
    #: firing it is a reactivation attempt, after which the "lost" detection counts
    reactivates: bool = False
    #: it needs fitted churn parameters (EngineConfig.churn); without them it is off
    needs_churn: bool = False


def _complaint_due(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, last: int | None
) -> Due | None:
    opened = state.open_complaint_ms
    if opened is None:
        return None
    return Due(opened + spec.complaint.respond_within, "complaint", opened)


def _complaint_details(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, due: Due
) -> dict[str, object]:
    return {"respond_within_h": spec.complaint.respond_within / 3_600_000}


def _inactive_lead_due(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, last: int | None
) -> Due | None:
    if state.purchases != 0 or state.lead_ms is None:
        return None
    return Due(state.lead_ms + spec.inactive_lead.after, "inactive_lead", state.lead_ms)


def _inactive_lead_details(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, due: Due
) -> dict[str, object]:
    return {"after_days": spec.inactive_lead.after / DAY_MS}


def _churn_risk_due(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, last: int | None
) -> Due | None:
    purchase = state.last_purchase_ms
    if ctx.churn is None or purchase is None:
        return None
    at = churn_risk_at_ms(ctx.churn, state, spec.churn_risk.threshold)
    return None if at is None else Due(at, "churn_risk", purchase)


def _churn_risk_details(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, due: Due
) -> dict[str, object]:
    if ctx.churn is None:
        return {}
    p = p_alive_at(ctx.churn, state, due.at_ms)
    return {"threshold": spec.churn_risk.threshold, "model": ctx.churn.model,
            "p_alive": None if p is None else round(p, 6)}


def _dormant_due(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, last: int | None
) -> Due | None:
    purchase = state.last_purchase_ms
    if purchase is None:
        return None
    return Due(purchase + dormant_after_ms(spec, state), "dormant", purchase)


def _dormant_details(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, due: Due
) -> dict[str, object]:
    gap = state.mean_gap_ms
    return {"quiet_days": round((due.at_ms - due.anchor) / DAY_MS, 3),
            "typical_gap_days": None if gap is None else round(gap / DAY_MS, 3),
            "threshold_days": round(dormant_after_ms(spec, state) / DAY_MS, 3)}


def _lost_due(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, last: int | None
) -> Due | None:
    attempt = state.reactivation_ms
    if attempt is None or (state.last_touch_ms or 0) > attempt:
        return None
    return Due(attempt + spec.lost.after, "lost", attempt)


def _lost_details(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, due: Due
) -> dict[str, object]:
    return {"after_days": spec.lost.after / DAY_MS}


def _low_season_due(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, last: int | None
) -> Due | None:
    return low_season_due(spec, state, last, ctx.default_zone)


def _low_season_details(
    spec: DetectionsSpec, state: CustomerState, ctx: Context, due: Due
) -> dict[str, object]:
    return {"months": list(spec.low_season.months), "season_start_ms": due.anchor}


#: The registry: one entry per detection kind, in the order detections due at the same
#: instant are handled. Adding a detection is an entry here plus its settings schema (a
#: field of journey.engine.definitions.DetectionsSpec).
DETECTIONS: dict[DetectionKind, Detection] = {
    "complaint": Detection(
        "at_risk", "complaint_escalation", "complaint_unanswered", "service",
        lambda s: s.complaint, _complaint_due, _complaint_details),
    "inactive_lead": Detection(
        "inactive_lead", "inactive_lead_reactivation", "inactive_lead", "marketing",
        lambda s: s.inactive_lead, _inactive_lead_due, _inactive_lead_details,
        reactivates=True),
    "churn_risk": Detection(
        "at_risk", "churn_risk_reactivation", "low_p_alive", "marketing",
        lambda s: s.churn_risk, _churn_risk_due, _churn_risk_details, reactivates=True,
        needs_churn=True),
    "dormant": Detection(
        "dormant", "dormant_wake_up", "sleeping_customer", "marketing",
        lambda s: s.dormant, _dormant_due, _dormant_details, reactivates=True),
    "lost": Detection(
        "lost", "win_back", "no_reaction", "marketing",
        lambda s: s.lost, _lost_due, _lost_details),
    "low_season": Detection(
        None, "low_season_invitation", "low_season", "marketing",
        lambda s: s.low_season, _low_season_due, _low_season_details, lifecycle=False),
}

#: Order in which detections due at the same instant are handled.
KINDS: tuple[DetectionKind, ...] = tuple(DETECTIONS)
#: Detections that belong to the customer, not to a journey: whatever journeys run, one
#: episode (an inactive lead, a sleeping customer...) yields one trigger, of journey "lifecycle".
LIFECYCLE_KINDS: tuple[DetectionKind, ...] = tuple(k for k, d in DETECTIONS.items()
                                                    if d.lifecycle)
#: Rule names of the triggers that time-driven detections fire.
DETECTION_RULES = frozenset(d.rule for d in DETECTIONS.values())
#: Rule names of the customer's lifecycle triggers.
LIFECYCLE_RULES = frozenset(DETECTIONS[k].rule for k in LIFECYCLE_KINDS)


#: Detections a journey turns on for itself (the low-season invitation).
JOURNEY_KINDS: tuple[DetectionKind, ...] = tuple(k for k in KINDS if k not in LIFECYCLE_KINDS)
#: Each kind's place in KINDS: detections due at the same instant are handled in this order.
ORDER: dict[DetectionKind, int] = {kind: i for i, kind in enumerate(KINDS)}


def enabled(
    spec: DetectionsSpec, kinds: tuple[DetectionKind, ...], ctx: Context
) -> tuple[tuple[DetectionKind, Deadline], ...]:
    """The kinds of `kinds` these settings turn on, each with its deadline function; one
    that needs fitted churn parameters is off without them. Settings do not change while
    an engine runs, so it works this out once."""
    return tuple((kind, DETECTIONS[kind].deadline) for kind in kinds
                 if DETECTIONS[kind].settings(spec).enabled
                 and (ctx.churn is not None or not DETECTIONS[kind].needs_churn))


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
