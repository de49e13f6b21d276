"""Detections in event time: inactive leads, sleeping customers, churn risk, unanswered
complaints, lost customers and cooling temperature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from journey.engine import CustomerState, Engine, Event, StageChange, TriggerRequest
from journey.engine.alive import ChurnParams, p_alive
from journey.engine.definitions import DetectionsSpec
from journey.engine.detections import DETECTIONS, DetectionKind
from journey.engine.duration import DAY_MS
from journey.engine.outputs import Output, TriggerSuppressed
from tests.unit.engine_helpers import T0, definition, engine, ev

JOURNEY = "name: j\nstages: [{name: s, entry: {}}]\n"


def _feed(eng: Engine, events: Sequence[Event]) -> CustomerState:
    state: CustomerState | None = None
    for e in events:
        state = eng.apply(state, e).state
    assert state is not None
    return state


def _triggers(outputs: list[Output]) -> list[tuple[str, int]]:
    return [(o.rule, (o.at_ms - T0) // DAY_MS) for o in outputs if isinstance(o, TriggerRequest)]


def _statuses(outputs: list[Output]) -> list[str]:
    return [o.to_stage for o in outputs if isinstance(o, StageChange) and o.journey == "lifecycle"]


def test_lead_without_purchase_for_a_month_becomes_inactive_at_day_30_exactly() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "lead_magnet_download", 0)])
    assert eng.next_deadline(state) == T0 + 30 * DAY_MS
    assert eng.on_time(state, T0 + 29 * DAY_MS).outputs == []
    step = eng.on_time(state, T0 + 45 * DAY_MS)
    assert _statuses(step.outputs) == ["inactive_lead"]
    assert _triggers(step.outputs) == [("inactive_lead_reactivation", 30)]
    # Firing again at a later watermark changes nothing: once per episode.
    assert [o for o in eng.on_time(step.state, T0 + 50 * DAY_MS).outputs
            if not isinstance(o, StageChange)] == []


def test_sleeping_customer_is_detected_after_k_times_their_own_gap() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(i, "purchase", day) for i, day in enumerate([0, 10, 20])])
    # mean gap 10 days, k = 2: dormant 20 days after the last purchase.
    assert eng.next_deadline(state) == T0 + 40 * DAY_MS
    step = eng.on_time(state, T0 + 41 * DAY_MS)
    assert _statuses(step.outputs) == ["dormant"]
    trigger = next(o for o in step.outputs if isinstance(o, TriggerRequest))
    assert trigger.rule == "dormant_wake_up"
    assert trigger.details["typical_gap_days"] == 10.0
    assert trigger.details["threshold_days"] == 20.0


def test_customer_with_too_few_purchases_sleeps_after_the_global_threshold() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0)])
    assert eng.next_deadline(state) == T0 + 90 * DAY_MS


def test_a_new_purchase_re_arms_the_dormancy_deadline() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0), ev(2, "purchase", 50)])
    assert eng.on_time(state, T0 + 95 * DAY_MS).outputs == []
    assert eng.next_deadline(state) == T0 + 140 * DAY_MS


def test_no_reaction_after_the_wake_up_makes_the_customer_lost_and_a_touch_reactivates() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0)])
    step = eng.on_time(state, T0 + 200 * DAY_MS)
    assert _statuses(step.outputs) == ["dormant", "lost"]
    assert _triggers(step.outputs) == [("dormant_wake_up", 90), ("win_back", 150)]
    back = eng.apply(step.state, ev(9, "site_visit", 201))
    assert _statuses(back.outputs) == ["reactivated"]
    assert back.state.counts["purchase"] == 1  # history kept


def test_a_touch_after_the_wake_up_prevents_lost() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0)])
    state = eng.on_time(state, T0 + 91 * DAY_MS).state
    state = eng.apply(state, ev(2, "email_opened", 100)).state
    assert "lost" not in _statuses(eng.on_time(state, T0 + 400 * DAY_MS).outputs)


def test_unanswered_complaint_escalates_as_a_service_trigger_even_after_opt_out() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0), ev(2, "opt_out", 1), ev(3, "complaint", 2)])
    step = eng.on_time(state, T0 + 5 * DAY_MS)
    assert _statuses(step.outputs) == ["at_risk"]
    escalation = [o for o in step.outputs if isinstance(o, TriggerRequest)]
    assert [(t.rule, t.kind, t.at_ms) for t in escalation] == [
        ("complaint_escalation", "service", T0 + 4 * DAY_MS)]


def test_answered_complaint_does_not_escalate() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0), ev(2, "complaint", 2),
                        ev(3, "complaint_response", 3)])
    assert _triggers(eng.on_time(state, T0 + 10 * DAY_MS).outputs) == []


def test_opted_out_sleeping_customer_is_detected_but_not_contacted() -> None:
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "purchase", 0), ev(2, "opt_out", 1)])
    step = eng.on_time(state, T0 + 95 * DAY_MS)
    assert _statuses(step.outputs) == ["dormant"]
    assert [o.reason for o in step.outputs if isinstance(o, TriggerSuppressed)] == ["opted_out"]
    assert _triggers(step.outputs) == []


def test_hot_contact_cools_to_warm_then_cold_when_quiet() -> None:
    eng = engine(definition(JOURNEY))
    events = [ev(1, "newsletter_subscribe", 0)] + [
        ev(i, "email_opened", 0.1 * i) for i in range(2, 8)]
    state = _feed(eng, events)
    assert state.temperature == "hot"
    step = eng.on_time(state, T0 + 120 * DAY_MS)
    temps = [(o.from_stage, o.to_stage) for o in step.outputs
             if isinstance(o, StageChange) and o.journey == "temperature"]
    assert temps == [("hot", "warm"), ("warm", "cold")]
    assert state.last_touch_ms is not None
    cold_at = next(o.at_ms for o in step.outputs
               if isinstance(o, StageChange) and o.to_stage == "cold")
    assert cold_at == state.last_touch_ms + 90 * DAY_MS


def test_churn_risk_fires_when_p_alive_crosses_the_threshold() -> None:
    params = ChurnParams(model="mbgnbd", r=0.525, alpha=6.183, a=0.891, b=1.614)
    eng = engine(definition(JOURNEY), churn=params)
    state = _feed(eng, [ev(i, "purchase", d) for i, d in enumerate([0, 7, 14, 21])])
    step = eng.on_time(state, T0 + 400 * DAY_MS)
    risk = [o for o in step.outputs if isinstance(o, TriggerRequest)
            and o.rule == "churn_risk_reactivation"]
    assert len(risk) == 1
    age_weeks = (risk[0].at_ms - T0) / (7 * DAY_MS)
    assert abs(p_alive(params, 3, 3.0, age_weeks) - 0.3) < 1e-3
    assert risk[0].details["p_alive"] <= 0.3


def test_detections_are_deterministic_and_independent_of_tick_granularity() -> None:
    def run(tick_days: list[int]) -> list[str]:
        eng = engine(definition(JOURNEY))
        state = _feed(eng, [ev(1, "lead_magnet_download", 0), ev(2, "purchase", 3),
                            ev(3, "purchase", 13), ev(4, "purchase", 23)])
        out: list[str] = []
        for day in tick_days:
            step = eng.on_time(state, T0 + day * DAY_MS)
            state = step.state
            out += [repr(o) for o in step.outputs]
        return out

    daily = run(list(range(0, 300)))
    assert daily == run([300])
    assert daily == run(list(range(0, 300)))
    assert any("dormant_wake_up" in o for o in daily)


SEASONAL = JOURNEY + """
detections:
  low_season: {enabled: true, months: [11, 12, 1, 2], min_purchases: 3}
"""


def _utc_ms(y: int, m: int, d: int) -> int:
    from datetime import UTC, datetime

    return int(datetime(y, m, d, tzinfo=UTC).timestamp() * 1000)


def test_regular_customers_are_invited_once_at_the_start_of_each_low_season() -> None:
    eng = engine(definition(SEASONAL))
    # Three purchases in spring 2026 make a regular customer (who then falls asleep: the
    # low season is the time to invite them back).
    state = _feed(eng, [ev(i, "purchase", 90 + i) for i in range(3)])
    assert state.status == "regular"
    step = eng.on_time(state, _utc_ms(2027, 12, 31))
    invites = [o.at_ms for o in step.outputs if isinstance(o, TriggerRequest)
               and o.rule == "low_season_invitation"]
    assert invites == [_utc_ms(2026, 11, 1), _utc_ms(2027, 11, 1)]


def test_a_customer_who_becomes_regular_in_season_is_invited_at_once() -> None:
    eng = engine(definition(SEASONAL))
    december = (_utc_ms(2026, 12, 10) - T0) / DAY_MS
    state = _feed(eng, [ev(i, "purchase", december + i) for i in range(3)])
    step = eng.on_time(state, _utc_ms(2026, 12, 20))
    invites = [o.at_ms for o in step.outputs if isinstance(o, TriggerRequest)
               and o.rule == "low_season_invitation"]
    assert invites == [state.last_purchase_ms]


def test_leads_are_not_invited_in_the_low_season() -> None:
    eng = engine(definition(SEASONAL))
    state = _feed(eng, [ev(1, "site_visit", 0)])
    assert not [o for o in eng.on_time(state, _utc_ms(2027, 3, 1)).outputs
                if isinstance(o, TriggerRequest) and o.rule == "low_season_invitation"]


def test_low_season_starts_at_local_midnight_in_the_deployments_default_zone() -> None:
    # Given a deployment in New Zealand and a regular customer whose events carry no zone
    eng = engine(definition(SEASONAL), default_timezone="Pacific/Auckland")
    state = _feed(eng, [ev(i, "purchase", 90 + i) for i in range(3)])
    # When event time passes the season's start
    step = eng.on_time(state, _utc_ms(2026, 12, 1))
    invites = [o.at_ms for o in step.outputs if isinstance(o, TriggerRequest)
               and o.rule == "low_season_invitation"]
    # Then the invitation comes at 1 November 00:00 in Auckland (31 October 11:00 UTC)
    assert invites == [_utc_ms(2026, 10, 31) + 11 * 3_600_000]


def test_every_detection_kind_has_one_registry_entry_and_one_settings_field() -> None:
    # Given the detection kinds, the registry and the definitions' `detections` block
    spec = DetectionsSpec()
    # Then each kind has exactly one entry and one settings field, and the entry reads that one
    assert list(DETECTIONS) == list(get_args(DetectionKind))
    assert set(DetectionsSpec.model_fields) == set(DETECTIONS)
    for kind, detection in DETECTIONS.items():
        assert detection.settings(spec) is getattr(spec, kind)


def _sequence(outputs: list[Output]) -> list[str]:
    """Each output as journey:stage for a stage change, rule for a trigger."""
    return [f"{o.journey}:{o.to_stage}" if isinstance(o, StageChange)
            else o.rule if isinstance(o, TriggerRequest) else "withheld" for o in outputs]


def test_detections_due_at_the_same_instant_fire_in_registry_order() -> None:
    # Given a lead from day 0 and a complaint on day 28, unanswered: the inactive lead
    # (30 days) and the unanswered complaint (48 hours) are both due on day 30
    eng = engine(definition(JOURNEY))
    state = _feed(eng, [ev(1, "signup", 0), ev(2, "complaint", 28)])
    # When time passes day 30
    step = eng.on_time(state, T0 + 31 * DAY_MS)
    # Then the complaint fires first (its status is then overtaken), and both triggers are
    # released after the detections, higher priority first
    assert _sequence(step.outputs) == [
        "lifecycle:at_risk", "lifecycle:inactive_lead", "complaint_escalation",
        "inactive_lead_reactivation"]


def test_a_temperature_change_at_a_detections_instant_comes_first() -> None:
    # Given a contact who cools 90 days after their last touch, and is an inactive lead then
    eng = engine(definition(JOURNEY + "detections: {inactive_lead: {after: 90d}}\n"))
    state = _feed(eng, [ev(1, "signup", 0)])
    # When time passes day 90
    step = eng.on_time(state, T0 + 91 * DAY_MS)
    # Then the temperature changes before the detection fires
    assert _sequence(step.outputs) == [
        "temperature:cold", "lifecycle:inactive_lead", "inactive_lead_reactivation"]


def test_a_release_at_a_detections_instant_comes_after_it() -> None:
    # Given a rule trigger released 30 days after a signup, when the lead turns inactive
    eng = engine(definition(JOURNEY + """rules:
  - {name: later, when: {type: signup}, delay: 30d, trigger: {reason: later, priority: 10}}
"""))
    state = _feed(eng, [ev(1, "signup", 0)])
    # When time passes day 30
    step = eng.on_time(state, T0 + 31 * DAY_MS)
    # Then the detection fires first; the two triggers are released together, by priority
    assert _sequence(step.outputs) == [
        "lifecycle:inactive_lead", "inactive_lead_reactivation", "later"]
