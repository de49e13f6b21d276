"""Customer state is versioned: older serialised states still load."""

from __future__ import annotations

import pytest

from journey.engine import CustomerState
from tests.unit.engine_helpers import engine, ev

# Written by the walking skeleton (state version 1).
V1_STATE = (
    b'{"customer_id":"c1","first_touch_ms":1000,"journeys":{"lifecycle":{"entered_ms":'
    b'{"customer":2000,"lead":1000},"stage":"customer"}},"last_touch_ms":2000,"purchases":1,'
    b'"spend":49.0,"touches":2,"v":1}'
)


def test_version_1_state_loads_and_keeps_its_status_and_counters() -> None:
    state = CustomerState.from_bytes(V1_STATE)
    assert state.status == "customer"
    assert state.status_ms == 2000
    assert (state.touches, state.purchases, state.spend) == (2, 1, 49.0)
    assert state.journeys == {}
    assert state.max_event_ms == 2000


def test_version_1_state_keeps_working_in_the_engine() -> None:
    state = CustomerState.from_bytes(V1_STATE)
    eng = engine(regular_from_purchases=2)
    step = eng.apply(state, ev(9, "purchase", 1))
    assert step.state.status == "regular"
    assert step.state.purchases == 2


def test_state_from_a_newer_version_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="newer than this worker reads"):
        CustomerState.from_bytes(b'{"v": 99, "customer_id": "c"}')
