"""Issue 9's examples: late opt-outs honoured, one message per episode, exits that cancel
pending triggers, and lifecycle detections that belong to the customer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from journey.engine import (
    CustomerState,
    Engine,
    EngineConfig,
    Event,
    StageChange,
    TriggerRequest,
    TriggerSuppressed,
    load_preset,
)
from journey.engine.definitions import DefinitionError
from journey.engine.duration import DAY_MS
from journey.engine.outputs import Output
from journey.engine.state import CustomerState as State
from tests.unit.engine_helpers import T0, definition, ev

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
TEN_AM = int(datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp() * 1000)


def _at(minutes_after_ten: int) -> int:
    return TEN_AM + minutes_after_ten * MINUTE_MS


def _run(engine: Engine, events: list[Event], until_ms: int | None = None) -> list[Output]:
    states: dict[str, CustomerState] = {}
    out = engine.apply_all(states, events)
    if until_ms is not None:
        for state in states.values():
            out += engine.on_time(state, until_ms).outputs
    return out


def _sent(out: list[Output]) -> list[TriggerRequest]:
    return [o for o in out if isinstance(o, TriggerRequest)]


def _audit(out: list[Output]) -> list[tuple[str, str, str]]:
    return [(o.request.rule, o.decision, o.reason) for o in out
            if isinstance(o, TriggerSuppressed)]


# --- 1. a late opt-out is always honoured -----------------------------------------------


def test_a_late_opt_out_stamped_before_the_release_stops_the_warm_up() -> None:
    # Given the touchpoint journey with a 1 h hold and 1 h allowed lateness
    engine = Engine([load_preset("touchpoint_journey")],
                    config=EngineConfig(trigger_hold_ms=HOUR_MS, allowed_lateness_ms=HOUR_MS))
    # When an ad click at 10:00 fires the warm-up (release 11:00), the customer's own next
    # event comes at 11:05, and then an opt-out stamped 10:10 arrives (within the lateness)
    events = [
        Event("click", "c1", "ad_click", _at(0), channel="facebook"),
        Event("visit", "c1", "site_visit", _at(65)),
        Event("optout", "c1", "opt_out", _at(10)),
    ]
    out = _run(engine, events, until_ms=_at(24 * 60))
    # Then no warm-up is sent: the opt-out is honoured
    assert [t.rule for t in _sent(out) if t.kind == "marketing"] == []
    assert ("warm_up_start", "suppressed", "opted_out") in _audit(out)


def test_the_customers_own_event_decides_a_marketing_trigger_once_the_lateness_has_passed() -> None:
    engine = Engine([load_preset("touchpoint_journey")],
                    config=EngineConfig(trigger_hold_ms=HOUR_MS, allowed_lateness_ms=HOUR_MS))
    state = engine.apply(None, Event("click", "c1", "ad_click", _at(0))).state
    # 11:05: an opt-out stamped before 11:00 could still arrive, so nothing is decided yet
    step = engine.apply(state, Event("visit", "c1", "site_visit", _at(65)))
    assert _sent(step.outputs) == [] and _audit(step.outputs) == []
    # 12:00: no opt-out stamped before 11:00 can arrive any more; the warm-up goes, sent at 11:00
    step = engine.apply(step.state, Event("visit2", "c1", "site_visit", _at(120)))
    assert [(t.rule, t.send_at_ms) for t in _sent(step.outputs)] == [("warm_up_start", _at(60))]


def test_service_triggers_are_not_held_back_by_the_lateness() -> None:
    engine = Engine([load_preset("touchpoint_journey")],
                    config=EngineConfig(trigger_hold_ms=HOUR_MS, allowed_lateness_ms=HOUR_MS))
    step = engine.apply(None, Event("inc", "c1", "incident", _at(0)))
    assert [t.rule for t in _sent(step.outputs)] == ["incident_apology"]


# --- 2. one episode, one message -------------------------------------------------------


THREE = ("touchpoint_journey", "classic_funnel", "aida")


def _three_journeys() -> Engine:
    return Engine([load_preset(n) for n in THREE], config=EngineConfig())


def test_an_inactive_lead_in_three_journeys_gets_one_reactivation_trigger() -> None:
    engine = _three_journeys()
    out = _run(engine, [ev(1, "lead_magnet_download", 0)], until_ms=T0 + 40 * DAY_MS)
    reactivations = [t for t in _sent(out) if t.rule == "inactive_lead_reactivation"]
    assert len(reactivations) == 1
    assert reactivations[0].journey == "lifecycle"
    assert reactivations[0].episode == f"inactive_lead:{T0}"


def test_a_sleeping_customer_in_three_journeys_gets_one_wake_up_and_one_win_back() -> None:
    engine = _three_journeys()
    out = _run(engine, [ev(1, "purchase", 0, amount=10.0)], until_ms=T0 + 400 * DAY_MS)
    rules = [t.rule for t in _sent(out) if t.journey == "lifecycle"]
    assert rules.count("dormant_wake_up") == 1
    assert rules.count("win_back") == 1
    assert all(t.rule not in ("dormant_wake_up", "win_back") for t in _sent(out)
               if t.journey != "lifecycle")


def test_an_unanswered_complaint_escalates_once_whatever_the_journeys() -> None:
    engine = _three_journeys()
    out = _run(engine, [ev(1, "complaint", 0)], until_ms=T0 + 5 * DAY_MS)
    assert [t.rule for t in _sent(out)].count("complaint_escalation") == 1


def test_journeys_that_set_a_lifecycle_detection_differently_are_refused() -> None:
    a = definition("name: a\nstages: [{name: s}]\ndetections: {dormant: {fallback: 30d}}\n")
    b = definition("name: b\nstages: [{name: s}]\ndetections: {dormant: {fallback: 60d}}\n")
    with pytest.raises(DefinitionError, match=r"detections\.dormant"):
        Engine([a, b])


def test_a_lifecycle_setting_one_journey_gives_applies_to_the_customer() -> None:
    a = definition("name: a\nstages: [{name: s}]\ndetections: {inactive_lead: {after: 10d}}\n")
    b = definition("name: b\nstages: [{name: s}]\n")
    out = _run(Engine([b, a]), [ev(1, "signup", 0)], until_ms=T0 + 12 * DAY_MS)
    assert [(t.rule, t.at_ms) for t in _sent(out)] == [
        ("inactive_lead_reactivation", T0 + 10 * DAY_MS)]


def test_state_of_version_2_keeps_the_episodes_its_journeys_fired() -> None:
    engine = _three_journeys()
    state = engine.apply(None, ev(1, "signup", 0)).state
    raw = state.to_dict()
    # Version 2 kept the inactive-lead episode in each journey's position.
    raw["v"] = 2
    del raw["detected"]
    for position in raw["journeys"].values():
        position["fired"]["inactive_lead"] = [1, T0]
    upgraded = State.from_dict(raw)
    assert upgraded.detected == {"inactive_lead": [1, T0]}
    later = engine.on_time(upgraded, T0 + 40 * DAY_MS).outputs
    assert [t for t in _sent(later) if t.rule == "inactive_lead_reactivation"] == []


# --- 3. exits and conversion goals ---------------------------------------------------------


def test_a_refund_cancels_the_pending_follow_ups_and_records_why() -> None:
    # Given a cold contact whose warm-up is held, then a 600 EUR purchase
    engine = Engine([load_preset("touchpoint_journey")],
                    config=EngineConfig(trigger_hold_ms=HOUR_MS, allowed_lateness_ms=HOUR_MS))
    events = [
        Event("click", "c1", "ad_click", _at(0)),
        Event("buy", "c1", "purchase", _at(20), amount=600.0, currency="EUR"),
        Event("refund", "c1", "refund", _at(40), amount=600.0, currency="EUR"),
    ]
    # When the refund comes before the follow-ups are released
    out = _run(engine, events, until_ms=_at(24 * 60))
    # Then no warm-up, first-purchase follow-up or feedback request goes out
    assert [t.rule for t in _sent(out)] == ["graceful_parting"]
    assert _audit(out) == [
        ("warm_up_start", "cancelled", "converted"),
        ("feedback_request", "cancelled", "refunded"),
        ("first_purchase_follow_up", "cancelled", "refunded"),
    ]


def test_a_purchase_cancels_the_pending_paid_offer_and_warm_up() -> None:
    engine = Engine([load_preset("touchpoint_journey")],
                    config=EngineConfig(trigger_hold_ms=HOUR_MS, allowed_lateness_ms=HOUR_MS))
    events = [Event(f"v{i}", "c1", "site_visit", _at(i)) for i in range(7)]
    events.append(Event("buy", "c1", "purchase", _at(30), amount=20.0))
    out = _run(engine, events, until_ms=_at(24 * 60))
    assert ("paid_offer_ready", "cancelled", "converted") in _audit(out)
    assert ("warm_up_start", "cancelled", "converted") in _audit(out)
    assert {t.rule for t in _sent(out)} == {"first_purchase_follow_up", "feedback_request"}


def test_an_exit_does_not_cancel_a_trigger_fired_after_it_in_event_time() -> None:
    text = """
name: j
stages: [{name: s}]
rules:
  - {name: nudge, once: false, when: {type: site_visit}, trigger: {reason: nudge}}
exits:
  - {name: bought, when: {type: purchase}}
"""
    engine = Engine([definition(text)], config=EngineConfig(trigger_hold_ms=HOUR_MS,
                                                            allowed_lateness_ms=HOUR_MS))
    # the purchase at 10:00 arrives after a visit at 10:30 fired a nudge
    out = _run(engine, [ev(1, "site_visit", 0.4375), ev(2, "purchase", 0.4167)],
               until_ms=T0 + 2 * DAY_MS)
    assert [t.rule for t in _sent(out)] == ["nudge"]


def test_an_exit_can_cancel_a_pending_lifecycle_trigger() -> None:
    text = """
name: j
stages: [{name: s}]
exits:
  - {name: came_back, when: {type: site_visit}, cancel: [dormant_wake_up]}
"""
    engine = Engine([definition(text)], config=EngineConfig(trigger_hold_ms=DAY_MS,
                                                            allowed_lateness_ms=HOUR_MS))
    state = engine.apply(None, ev(1, "purchase", 0)).state
    fired = engine.on_time(state, T0 + 90 * DAY_MS).outputs  # dormant at day 90, held a day
    assert not _sent(fired)
    out = engine.apply(state, ev(2, "site_visit", 90.5)).outputs
    assert ("dormant_wake_up", "cancelled", "came_back") in _audit(out)


def test_an_exit_naming_an_unknown_rule_is_refused_with_its_name() -> None:
    with pytest.raises(DefinitionError, match="exit 'x' cancels unknown rules"):
        definition("name: j\nstages: [{name: s}]\nexits: [{name: x, when: {}, cancel: [nope]}]\n")


def test_no_lifecycle_stage_change_is_lost_by_one_owner() -> None:
    out = _run(_three_journeys(), [ev(1, "signup", 0)], until_ms=T0 + 40 * DAY_MS)
    statuses = [o.to_stage for o in out if isinstance(o, StageChange) and o.journey == "lifecycle"]
    assert statuses == ["lead", "inactive_lead"]
