"""The trigger policy: consent, contact budget, cooldown and re-entry, quiet hours across
daylight-saving changes, holdout, expiry, holds, delays and deterministic ids and codes."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from journey.engine import CustomerState, Engine, Event, TriggerRequest, TriggerSuppressed
from journey.engine.duration import DAY_MS
from journey.engine.outputs import Output
from journey.engine.policy import ContactBudget, QuietHours, holdout_share, offer_code
from tests.unit.engine_helpers import T0, definition, engine, ev

HOUR = 3_600_000
PROMO = """
name: shop
stages: [{name: s, entry: {}}]
rules:
  - {name: promo, once: false, when: {type: purchase}, trigger: {reason: promo, valid_for: 7d}}
  - {name: visit, once: false, when: {type: site_visit}, trigger: {reason: visit, priority: 10}}
  - {name: sorry, once: false, when: {type: incident}, trigger: {reason: sorry, kind: service}}
"""


def _run(eng: Engine, events: list[Event], until_ms: int | None = None) -> list[Output]:
    state: CustomerState | None = None
    out: list[Output] = []
    for e in events:
        step = eng.apply(state, e)
        state = step.state
        out += step.outputs
    if until_ms is not None and state is not None:
        out += eng.on_time(state, until_ms).outputs
    return out


def _sent(out: list[Output]) -> list[TriggerRequest]:
    return [o for o in out if isinstance(o, TriggerRequest)]


def _sent_at(trigger: TriggerRequest) -> int:
    """When a released trigger may be acted on (the policy sets it on release)."""
    assert trigger.send_at_ms is not None, f"{trigger.rule} was not released"
    return trigger.send_at_ms


def _withheld(out: list[Output]) -> list[tuple[str, str, str]]:
    return [(o.request.rule, o.decision, o.reason) for o in out
            if isinstance(o, TriggerSuppressed)]


def test_hold_lets_a_late_opt_out_within_the_lateness_stop_a_marketing_trigger() -> None:
    eng = engine(definition(PROMO), trigger_hold_ms=HOUR, allowed_lateness_ms=HOUR)
    # The purchase at 10:00 fires a promo; the opt-out of 09:50 arrives after it.
    out = _run(eng, [ev(1, "purchase", 0.4167), ev(2, "opt_out", 0.41)], T0 + DAY_MS)
    assert _sent(out) == []
    assert _withheld(out) == [("promo", "suppressed", "opted_out")]


def test_without_a_hold_the_trigger_goes_at_once_and_the_consent_at_that_time_counts() -> None:
    eng = engine(definition(PROMO), allowed_lateness_ms=0)
    out = _run(eng, [ev(1, "purchase", 1)])
    assert [t.rule for t in _sent(out)] == ["promo"]
    assert _sent(out)[0].send_at_ms == T0 + DAY_MS


def test_service_triggers_are_exempt_from_opt_out_and_hold() -> None:
    eng = engine(definition(PROMO), trigger_hold_ms=HOUR)
    out = _run(eng, [ev(1, "opt_out", 0), ev(2, "incident", 1)])
    assert [(t.rule, t.kind) for t in _sent(out)] == [("sorry", "service")]


def test_contact_budget_admits_higher_priority_first_when_triggers_compete() -> None:
    eng = engine(definition(PROMO), contact_budget=ContactBudget(1, 7 * DAY_MS),
                 allowed_lateness_ms=0)
    # One event time, two rules: a purchase that is also... two events at the same instant.
    out = _run(eng, [ev(1, "site_visit", 1), ev(2, "purchase", 1)])
    assert [t.rule for t in _sent(out)] == ["visit"]  # released first, at its own event
    eng = engine(definition(PROMO), contact_budget=ContactBudget(1, 7 * DAY_MS),
                 trigger_hold_ms=HOUR, allowed_lateness_ms=0)
    out = _run(eng, [ev(1, "site_visit", 1), ev(2, "purchase", 1)], T0 + 2 * DAY_MS)
    assert [t.rule for t in _sent(out)] == ["promo"]  # released together: priority 50 > 10
    assert _withheld(out) == [("visit", "suppressed", "contact_budget")]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["purchase", "site_visit", "incident"]),
                          st.integers(min_value=0, max_value=40 * 24)), max_size=60),
       st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=10))
def test_contact_budget_is_never_exceeded_in_any_window(
    raw: list[tuple[str, int]], count: int, window_days: int
) -> None:
    budget = ContactBudget(count, window_days * DAY_MS)
    eng = engine(definition(PROMO), contact_budget=budget, trigger_hold_ms=2 * HOUR,
                 allowed_lateness_ms=3 * DAY_MS)
    events = [ev(i, t, hours / 24) for i, (t, hours) in enumerate(raw)]
    out = _run(eng, events, T0 + 50 * DAY_MS)
    times = sorted(_sent_at(t) for t in _sent(out) if t.kind == "marketing")
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + budget.window_ms]
        assert len(in_window) <= count


def test_cooldown_and_once_per_rule() -> None:
    text = PROMO + """
policy:
  rules:
    promo: {cooldown: 3d}
    visit: {once: true}
"""
    eng = engine(definition(text), allowed_lateness_ms=0)
    out = _run(eng, [ev(1, "purchase", 0), ev(2, "purchase", 1), ev(3, "purchase", 4),
                     ev(4, "site_visit", 5), ev(5, "site_visit", 30)])
    rules = [t for t in _sent(out) if t.rule in ("promo", "visit")]
    assert [(t.rule, (_sent_at(t) - T0) // DAY_MS) for t in rules] == [
        ("promo", 0), ("promo", 4), ("visit", 5)]
    assert _withheld(out) == [("promo", "suppressed", "cooldown"),
                              ("visit", "suppressed", "already_sent")]


def _warsaw_ms(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=ZoneInfo("Europe/Warsaw")).timestamp() * 1000)


def test_quiet_hours_defer_to_local_morning_across_the_spring_daylight_saving_change() -> None:
    quiet = QuietHours(time(21), time(8))
    zone = ZoneInfo("Europe/Warsaw")
    # 22:00 CET on 28 March 2026; clocks go forward that night.
    until = quiet.next_allowed_ms(_warsaw_ms(2026, 3, 28, 22), zone)
    assert until == _warsaw_ms(2026, 3, 29, 8)
    assert datetime.fromtimestamp(until / 1000, UTC).hour == 6  # 08:00 CEST is 06:00 UTC


def test_quiet_hours_defer_to_local_morning_across_the_autumn_daylight_saving_change() -> None:
    quiet = QuietHours(time(21), time(8))
    zone = ZoneInfo("Europe/Warsaw")
    until = quiet.next_allowed_ms(_warsaw_ms(2026, 10, 24, 23, 30), zone)
    assert until == _warsaw_ms(2026, 10, 25, 8)
    assert datetime.fromtimestamp(until / 1000, UTC).hour == 7  # 08:00 CET is 07:00 UTC
    assert quiet.next_allowed_ms(_warsaw_ms(2026, 10, 25, 12), zone) is None
    assert quiet.next_allowed_ms(_warsaw_ms(2026, 10, 25, 3), zone) == _warsaw_ms(2026, 10, 25, 8)


def test_quiet_hours_in_the_engine_defer_in_the_customers_zone_and_keep_the_id() -> None:
    eng = engine(definition(PROMO), quiet_hours=QuietHours(time(21), time(8)))
    at = _warsaw_ms(2026, 3, 28, 22)
    purchase = Event("e1", "c1", "purchase", at, timezone="Europe/Warsaw")
    out = _run(eng, [purchase], _warsaw_ms(2026, 3, 30, 0))
    assert _withheld(out) == [("promo", "deferred", "quiet_hours")]
    deferred = next(o for o in out if isinstance(o, TriggerSuppressed))
    sent = _sent(out)
    assert [t.send_at_ms for t in sent] == [_warsaw_ms(2026, 3, 29, 8)]
    assert sent[0].trigger_id == deferred.request.trigger_id
    assert deferred.until_ms == sent[0].send_at_ms


def test_quiet_hours_drop_when_the_rule_says_so() -> None:
    text = PROMO + "policy:\n  rules:\n    promo: {quiet_hours: drop}\n"
    eng = engine(definition(text), quiet_hours=QuietHours(time(21), time(8)))
    out = _run(eng, [ev(1, "purchase", 0.95)], T0 + 3 * DAY_MS)  # 22:48 UTC
    assert _sent(out) == []
    assert _withheld(out) == [("promo", "suppressed", "quiet_hours")]


def test_expired_offer_is_not_sent_late() -> None:
    text = PROMO.replace("valid_for: 7d", "valid_for: 1h")
    eng = engine(definition(text), trigger_hold_ms=2 * HOUR)
    out = _run(eng, [ev(1, "purchase", 0)], T0 + DAY_MS)
    assert _withheld(out) == [("promo", "suppressed", "expired")]


def test_rule_delay_releases_a_follow_up_weeks_later() -> None:
    text = PROMO.replace("valid_for: 7d}}", "valid_for: 30d}, delay: 14d}")
    eng = engine(definition(text))
    assert _sent(_run(eng, [ev(1, "purchase", 0)], T0 + 13 * DAY_MS)) == []
    sent = _sent(_run(eng, [ev(1, "purchase", 0)], T0 + 15 * DAY_MS))
    assert [(t.rule, t.send_at_ms) for t in sent] == [("promo", T0 + 14 * DAY_MS)]


def test_holdout_share_is_within_tolerance_on_100000_customers_and_stable() -> None:
    shares = [holdout_share(f"customer-{i}", "journey") for i in range(100_000)]
    held = sum(1 for s in shares if s < 0.10)
    # Binomial(100000, 0.1): sd ~ 95; five sigma is ~475.
    assert abs(held - 10_000) < 475
    assert shares == [holdout_share(f"customer-{i}", "journey") for i in range(100_000)]
    assert holdout_share("customer-1", "other-salt") != shares[1]


def test_held_out_triggers_are_recorded_not_sent_and_service_is_never_held_out() -> None:
    text = PROMO + "policy: {holdout: 0.5}\n"
    eng = engine(definition(text), allowed_lateness_ms=0)
    held_marketing = sent_marketing = 0
    for i in range(200):
        cid = f"c{i}"
        out = _run(eng, [Event(f"e{i}", cid, "purchase", T0),
                         Event(f"i{i}", cid, "incident", T0 + 1)])
        assert "sorry" in [t.rule for t in _sent(out)]
        held_marketing += len([w for w in _withheld(out) if w[1] == "held_out"])
        sent_marketing += len([t for t in _sent(out) if t.rule == "promo"])
    assert held_marketing + sent_marketing == 200
    assert 60 < held_marketing < 140


def test_replaying_the_same_input_twice_gives_the_same_trigger_ids_and_offer_codes() -> None:
    rng = random.Random(3)
    events = [Event(f"e{i}", f"c{rng.randrange(20)}", rng.choice(["purchase", "site_visit",
                                                                   "incident", "opt_out"]),
                    T0 + i * HOUR) for i in range(500)]

    def run() -> list[tuple[str, str | None, int | None]]:
        eng = engine(definition(PROMO), trigger_hold_ms=HOUR,
                     contact_budget=ContactBudget(2, 7 * DAY_MS), offer_secret="s3cret")
        states: dict[str, CustomerState] = {}
        out = eng.apply_all(states, events)
        for state in states.values():
            out += eng.on_time(state, T0 + 600 * HOUR).outputs
        return [(t.trigger_id, t.offer_code, t.send_at_ms) for t in _sent(out)]

    first = run()
    assert first == run()
    assert len({tid for tid, _, _ in first}) == len(first)
    assert len({code for _, code, _ in first}) == len(first)


def test_offer_code_depends_on_the_secret() -> None:
    assert offer_code("t1", "a") == offer_code("t1", "a")
    assert offer_code("t1", "a") != offer_code("t1", "b")
    assert offer_code("t1", "a") != offer_code("t2", "a")


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=80), st.text(max_size=100))
def test_offer_code_is_the_first_twelve_base32_letters_of_the_keyed_hash(
    trigger_id: str, secret: str
) -> None:
    # The code as first written, with the standard library's base32
    digest = hashlib.blake2b(trigger_id.encode(), key=secret.encode()[:64], digest_size=10)
    text = base64.b32encode(digest.digest()).decode()

    assert offer_code(trigger_id, secret) == f"{text[:4]}-{text[4:8]}-{text[8:12]}"


def test_a_trigger_due_before_an_opt_out_is_released_before_the_opt_out_applies() -> None:
    eng = engine(definition(PROMO), trigger_hold_ms=HOUR)
    # The promo of day 0 was due at 01:00 on day 0; the customer opts out on day 9.
    out = _run(eng, [ev(1, "purchase", 0), ev(2, "opt_out", 9)])
    assert [t.rule for t in _sent(out)] == ["promo"]
    assert _withheld(out) == []
