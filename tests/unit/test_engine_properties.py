"""Properties of the engine over arbitrary event sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from journey.engine import CustomerState, Engine, Event, StageChange
from journey.engine.duration import DAY_MS
from journey.engine.outputs import TriggerRequest, TriggerSuppressed
from tests.unit.engine_helpers import LINEAR, T0, definition, engine

TYPES = ["site_visit", "signup", "purchase", "email_opened", "newsletter_subscribe",
         "opt_out", "opt_in", "referral", "complaint", "complaint_response", "incident",
         "minibook_downloaded", "webinar_attended", "paid_link_clicked", "consultation",
         "first_use", "lead_magnet_download", "property_viewing"]

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from(TYPES),
        st.integers(min_value=0, max_value=60 * DAY_MS),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False)),
        st.integers(min_value=0, max_value=40),  # event id; repeats make duplicates
        st.sampled_from([{}, {"tier": "core"}, {"rewarded": True}, {"tier": "premium"}]),
    ),
    max_size=60,
)


#: (customer, type, ms after T0, amount, event number, properties), as events_strategy draws
RawEvents = list[tuple[str, str, int, float | None, int, dict[str, object]]]


def _events(raw: RawEvents) -> list[Event]:
    return [Event(event_id=f"e{n}", customer_id=c, type=t, at_ms=T0 + at, amount=amount,
                  properties=dict(props))
            for c, t, at, amount, n, props in raw]


def _engine() -> Engine:
    return engine(definition(LINEAR), "touchpoint_journey", allowed_lateness_ms=7 * DAY_MS)


def _run(events: list[Event]) -> tuple[dict[str, bytes], list[str]]:
    eng = _engine()
    states: dict[str, CustomerState] = {}
    outputs = eng.apply_all(states, events)
    return {k: v.to_bytes() for k, v in states.items()}, [repr(o) for o in outputs]


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_replaying_the_same_events_gives_byte_identical_states_and_outputs(raw: RawEvents) -> None:
    events = _events(raw)
    assert _run(events) == _run(events)


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_in_order_journey_never_skips_a_stage(raw: RawEvents) -> None:
    eng = _engine()
    states: dict[str, CustomerState] = {}
    names = ["a", "b", "c", "d"]
    for output in eng.apply_all(states, _events(raw)):
        if isinstance(output, StageChange) and output.journey == "linear":
            before = -1 if output.from_stage is None else names.index(output.from_stage)
            assert names.index(output.to_stage) == before + 1


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_counters_never_decrease(raw: RawEvents) -> None:
    eng = _engine()
    states: dict[str, CustomerState] = {}
    for event in _events(raw):
        before = states.get(event.customer_id)
        snapshot = None if before is None else (
            before.touches, before.purchases, before.spend, before.referrals_unpaid,
            before.referrals_rewarded, before.max_event_ms, dict(before.counts))
        step = eng.apply(before, event)
        states[event.customer_id] = step.state
        s = step.state
        if snapshot is not None:
            touches, purchases, spend, fans, promoters, newest, counts = snapshot
            assert s.touches >= touches and s.purchases >= purchases and s.spend >= spend
            assert s.referrals_unpaid >= fans and s.referrals_rewarded >= promoters
            assert s.max_event_ms >= newest
            assert all(s.counts[t] >= n for t, n in counts.items())


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_state_survives_a_round_trip_through_its_serialised_form(raw: RawEvents) -> None:
    eng = _engine()
    states: dict[str, CustomerState] = {}
    eng.apply_all(states, _events(raw))
    for state in states.values():
        again = CustomerState.from_bytes(state.to_bytes())
        assert again == state
        assert again.to_bytes() == state.to_bytes()


@settings(max_examples=100, deadline=None)
@given(events_strategy, st.integers(min_value=1, max_value=59))
def test_processing_from_a_restored_state_equals_processing_straight_through(
    raw: RawEvents, cut: int
) -> None:
    events = _events(raw)
    cut = min(cut, len(events))
    straight, straight_out = _run(events)
    eng = _engine()
    states: dict[str, CustomerState] = {}
    out = [repr(o) for o in eng.apply_all(states, events[:cut])]
    restored = {k: CustomerState.from_bytes(v.to_bytes()) for k, v in states.items()}
    out += [repr(o) for o in _engine().apply_all(restored, events[cut:])]
    assert {k: v.to_bytes() for k, v in restored.items()} == straight
    assert out == straight_out


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_no_marketing_trigger_is_emitted_while_a_customer_is_opted_out(raw: RawEvents) -> None:
    eng = _engine()
    states: dict[str, CustomerState] = {}
    for event in _events(raw):
        step = eng.apply(states.get(event.customer_id), event)
        states[event.customer_id] = step.state
        for output in step.outputs:
            # A marketing trigger is decided once no earlier opt-out can still arrive, so
            # it may come out in the step of a later event, even of a later opt-out; what
            # never happens is one for an episode after the customer opted out.
            if isinstance(output, TriggerRequest) and output.kind == "marketing":
                state = step.state
                assert not (state.opted_out and state.consent_ms is not None
                            and state.consent_ms < output.at_ms)
            # (the touchpoint journey's exits cancel pending nudges: decision "cancelled")
            if isinstance(output, TriggerSuppressed) and output.decision != "cancelled":
                assert output.reason == "opted_out"
