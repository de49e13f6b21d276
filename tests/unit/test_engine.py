"""The journey engine: stages, statuses, counters, rules, lateness, duplicates, consent."""

from __future__ import annotations

from collections.abc import Sequence

from journey.engine import (
    CustomerState,
    Engine,
    Event,
    Output,
    StageChange,
    TriggerRequest,
    TriggerSuppressed,
)
from journey.engine.duration import DAY_MS
from tests.unit.engine_helpers import LINEAR, T0, definition, engine, ev


def _stages(outputs: Sequence[object], journey: str = "linear") -> list[tuple[str | None, str]]:
    return [(o.from_stage, o.to_stage) for o in outputs
            if isinstance(o, StageChange) and o.journey == journey]


def _run(eng: Engine, events: Sequence[Event]) -> tuple[CustomerState, list[Output]]:
    states: dict[str, CustomerState] = {}
    outputs = eng.apply_all(states, events)
    return states["c1"], outputs


def test_in_order_journey_advances_one_stage_per_event_and_never_skips() -> None:
    eng = engine(definition(LINEAR))
    # A purchase before any signup does not jump to c: b has not been completed.
    state, out = _run(eng, [ev(1, "site_visit"), ev(2, "purchase", 1), ev(3, "signup", 2),
                            ev(4, "purchase", 3)])
    assert _stages(out) == [(None, "a"), ("a", "b"), ("b", "c")]
    assert state.journeys["linear"].stage == "c"


def test_skippable_journey_jumps_to_the_furthest_matching_stage() -> None:
    eng = engine(definition(LINEAR.replace("in_order: true", "in_order: false")))
    _, out = _run(eng, [ev(1, "purchase")])
    assert _stages(out) == [(None, "c")]


def test_stage_change_carries_time_in_previous_stage_in_event_time() -> None:
    eng = engine(definition(LINEAR))
    _, out = _run(eng, [ev(1, "site_visit"), ev(2, "signup", 2.5)])
    change = [o for o in out if isinstance(o, StageChange) and o.journey == "linear"][1]
    assert change.ms_in_previous_stage == int(2.5 * DAY_MS)
    assert change.cause_event_id == "e2"


def test_backward_move_is_taken_only_when_allowed() -> None:
    text = """
name: loop
stages:
  - {name: active, entry: {type: [site_visit, purchase]}}
  - {name: lost, entry: {type: opt_out}}
backward:
  - {from: lost, to: active}
"""
    eng = engine(definition(text))
    _, out = _run(eng, [ev(1, "site_visit"), ev(2, "opt_out", 1), ev(3, "purchase", 2)])
    assert _stages(out, "loop") == [(None, "active"), ("active", "lost"), ("lost", "active")]
    no_back = engine(definition(text.replace("backward:\n  - {from: lost, to: active}\n", "")))
    _, out = _run(no_back, [ev(1, "site_visit"), ev(2, "opt_out", 1), ev(3, "purchase", 2)])
    assert _stages(out, "loop") == [(None, "active"), ("active", "lost")]


def test_lifecycle_status_follows_purchases_with_regular_from_three() -> None:
    eng = engine()
    state, out = _run(eng, [ev(1, "signup"), ev(2, "purchase", 1), ev(3, "purchase", 2),
                            ev(4, "purchase", 3)])
    assert _stages(out, "lifecycle") == [(None, "lead"), ("lead", "customer"),
                                         ("customer", "regular")]
    assert state.status == "regular"


def test_counters_attribution_and_purchase_gaps_are_kept() -> None:
    eng = engine()
    state, _ = _run(eng, [
        ev(1, "ad_click", 0, channel="facebook", source="facebook", campaign="spring"),
        ev(2, "purchase", 10, amount=20.0),
        ev(3, "purchase", 20, amount=40.0),
        ev(4, "purchase", 40, amount=60.0),
    ])
    assert state.touches == 4
    assert state.first_touch is not None
    assert (state.first_touch.channel, state.first_touch.source,
            state.first_touch.campaign) == ("facebook", "facebook", "spring")
    assert state.purchases == 3
    assert state.spend == 120.0
    assert state.average_spend == 40.0
    assert state.mean_gap_ms == 15 * DAY_MS
    assert state.gap_stddev_ms is not None and state.gap_stddev_ms > 0
    assert state.last_touch_ms == T0 + 40 * DAY_MS


def test_out_of_order_event_within_lateness_does_not_move_last_touch_backwards() -> None:
    eng = engine(allowed_lateness_ms=2 * DAY_MS)
    state, _ = _run(eng, [ev(1, "site_visit", 5), ev(2, "email_opened", 4)])
    assert state.last_touch_ms == T0 + 5 * DAY_MS
    assert state.touches == 2
    assert state.late_events == 0


def test_event_later_than_allowed_lateness_updates_counters_but_fires_nothing() -> None:
    eng = engine(definition(LINEAR), allowed_lateness_ms=DAY_MS)
    state = None
    for e in [ev(1, "site_visit", 10), ev(2, "signup", 11)]:
        state = eng.apply(state, e).state
    step = eng.apply(state, ev(3, "purchase", 8, amount=5.0))  # 3 days late, within dedupe
    assert step.note == "late"
    assert step.outputs == []
    assert step.state.purchases == 1
    assert step.state.late_events == 1
    assert step.state.journeys["linear"].stage == "b"


def test_drop_policy_ignores_late_events_except_consent() -> None:
    eng = engine(allowed_lateness_ms=DAY_MS, late_policy="drop")
    state = eng.apply(None, ev(1, "site_visit", 10)).state
    state = eng.apply(state, ev(2, "purchase", 2, amount=5.0)).state
    assert state.purchases == 0
    state = eng.apply(state, ev(3, "opt_out", 3)).state
    assert state.opted_out is True


def test_duplicate_event_id_is_dropped_and_noted() -> None:
    eng = engine(definition(LINEAR))
    state = eng.apply(None, ev(1, "purchase")).state
    step = eng.apply(state, ev(1, "purchase"))
    assert step.note == "duplicate"
    assert step.outputs == []
    assert step.state.purchases == 1


def test_duplicates_are_forgotten_after_the_horizon() -> None:
    eng = engine(dedupe_horizon_ms=DAY_MS)
    state = eng.apply(None, ev(1, "site_visit", 0)).state
    state = eng.apply(state, ev(2, "site_visit", 3)).state
    assert "e1" not in state.recent_ids
    assert "e2" in state.recent_ids


def test_rule_fires_once_with_a_deterministic_trigger_id() -> None:
    eng = engine(definition(LINEAR))
    _, out = _run(eng, [ev(i, "site_visit", i) for i in range(1, 6)])
    triggers = [o for o in out if isinstance(o, TriggerRequest)]
    assert [t.rule for t in triggers] == ["three_touches"]
    _, again = _run(engine(definition(LINEAR)), [ev(i, "site_visit", i) for i in range(1, 6)])
    assert [t.trigger_id for t in again if isinstance(t, TriggerRequest)] == [
        triggers[0].trigger_id]
    assert triggers[0].valid_for_ms == 7 * DAY_MS
    assert triggers[0].details["touches"] == 3


def test_repeatable_rule_respects_its_minimum_interval() -> None:
    text = """
name: fb
stages: [{name: s, entry: {}}]
rules:
  - {name: ask, once: false, every: 10d, when: {type: purchase}, trigger: {reason: feedback}}
"""
    _, out = _run(engine(definition(text), allowed_lateness_ms=0),
                  [ev(1, "purchase", 0), ev(2, "purchase", 5), ev(3, "purchase", 12)])
    fired = [o for o in out if isinstance(o, TriggerRequest)]
    assert [t.details["cause_event_id"] for t in fired] == ["e1", "e3"]
    assert len({t.trigger_id for t in fired}) == 2


def test_opted_out_customer_gets_no_marketing_trigger_but_service_ones_pass() -> None:
    text = """
name: t
stages: [{name: s, entry: {}}]
rules:
  - {name: promo, when: {type: purchase}, trigger: {reason: promo}}
  - {name: sorry, once: false, when: {type: incident}, trigger: {reason: incident, kind: service}}
"""
    _, out = _run(engine(definition(text)),
                  [ev(1, "site_visit"), ev(2, "opt_out", 1), ev(3, "purchase", 2),
                   ev(4, "incident", 3)])
    assert [o.reason for o in out if isinstance(o, TriggerSuppressed)] == ["opted_out"]
    assert [o.rule for o in out if isinstance(o, TriggerRequest)] == ["sorry"]


def test_late_opt_out_within_lateness_still_blocks_later_marketing() -> None:
    text = """
name: t
stages: [{name: s, entry: {}}]
rules:
  - {name: promo, once: false, when: {type: purchase}, trigger: {reason: promo}}
"""
    eng = engine(definition(text), allowed_lateness_ms=2 * DAY_MS)
    # The opt-out happened on day 1 but arrives after a day-2 visit.
    _, out = _run(eng, [ev(1, "site_visit", 2), ev(2, "opt_out", 1), ev(3, "purchase", 3)])
    assert not [o for o in out if isinstance(o, TriggerRequest)]


def test_opt_in_after_opt_out_by_event_time_restores_consent_whatever_the_arrival_order() -> None:
    eng = engine(allowed_lateness_ms=5 * DAY_MS)
    state, _ = _run(eng, [ev(1, "opt_in", 3), ev(2, "opt_out", 1)])
    assert state.opted_out is False
    state, _ = _run(eng, [ev(1, "opt_out", 3), ev(2, "opt_in", 1)])
    assert state.opted_out is True


def test_temperature_goes_cold_to_warm_to_hot_by_seed_001_criteria() -> None:
    eng = engine()
    state = eng.apply(None, ev(1, "ad_click", 0)).state
    assert state.temperature == "cold"
    state = eng.apply(state, ev(2, "newsletter_subscribe", 1)).state
    assert state.temperature == "warm"
    for i in range(3, 7):
        state = eng.apply(state, ev(i, "email_opened", 1 + i * 0.1)).state
    assert state.temperature == "hot"


def test_referral_counts_split_fans_and_promoters() -> None:
    state, _ = _run(engine(), [ev(1, "referral"), ev(2, "referral", 1,
                                                       properties={"rewarded": True})])
    assert (state.referrals_unpaid, state.referrals_rewarded) == (1, 1)


def test_score_decays_with_half_life_and_does_not_depend_on_arrival_order() -> None:
    text = """
name: s
stages: [{name: x, entry: {}}]
scoring: {points: {minibook_downloaded: 8, webinar_attended: 2}, half_life: 10d}
"""
    eng = engine(definition(text), allowed_lateness_ms=30 * DAY_MS)
    a, _ = _run(eng, [ev(1, "minibook_downloaded", 0), ev(2, "webinar_attended", 10)])
    b, _ = _run(eng, [ev(2, "webinar_attended", 10), ev(1, "minibook_downloaded", 0)])
    score_a = a.journeys["s"].score_at(T0 + 10 * DAY_MS, 10 * DAY_MS)
    score_b = b.journeys["s"].score_at(T0 + 10 * DAY_MS, 10 * DAY_MS)
    assert abs(score_a - 6.0) < 1e-9  # 8 halved after 10 days, plus 2
    assert abs(score_a - score_b) < 1e-9


def test_each_definition_keeps_its_own_position() -> None:
    eng = engine(definition(LINEAR), "touchpoint_journey")
    state, _ = _run(eng, [ev(1, "site_visit"), ev(2, "signup", 1)])
    assert state.journeys["linear"].stage == "b"
    assert state.journeys["touchpoint_journey"].stage == "subscribed"


def test_a_late_event_beyond_the_dedupe_horizon_is_dropped_not_counted_twice() -> None:
    eng = engine(allowed_lateness_ms=DAY_MS, dedupe_horizon_ms=7 * DAY_MS)
    state = eng.apply(None, ev(1, "purchase", 0, amount=10.0)).state
    state = eng.apply(state, ev(2, "site_visit", 30)).state
    # The first purchase is sent again; its id was forgotten 23 days ago.
    step = eng.apply(state, ev(1, "purchase", 0, amount=10.0))
    assert step.note == "late"
    assert step.state.purchases == 1
    assert step.state.spend == 10.0
