"""The live holdout lift counters agree with the report's intention-to-treat counts, count each
customer once per rule, survive a state written and read back, and carry no customer id."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from prometheus_client import CollectorRegistry

from journey.engine import CustomerState, TriggerRequest
from journey.engine.outputs import TriggerSuppressed
from journey.lab.facts import scan
from journey.lab.lift import assign
from journey.lab.run import Collected, lab_settings
from journey.lab.simulate import SimulationConfig, iter_lines, simulate
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.lift import LIFT_WINDOW_MS, Count, LiftTracker
from journey.pipeline.settings import Settings

DAY = 86_400_000


def sample(registry: CollectorRegistry, name: str) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == name:
                found[s.labels["journey"], s.labels["rule"], s.labels["arm"]] = s.value
    return found


def test_live_counters_equal_the_reports_assignments_and_conversions() -> None:
    # Given a simulated population run in-process with a holdout
    settings = lab_settings(Settings(), None, 0.3, "live")
    events = simulate(SimulationConfig(seed=11, customers=300))
    lines = list(iter_lines(events))
    pipeline = in_process_pipeline(settings)
    collected = Collected()
    for record in replay_lines(lines, pipeline, until_ms=None):
        record["topic"] = record["topic"].removeprefix(settings.topic_prefix)
        collected.add(record)

    # When the report's assignment is computed from the outputs
    arms = assign([(j, r, c, s) for j, r, c, _, _, _, s in collected.triggers],
                  [(j, r, d, w, c, t) for j, r, d, w, c, _, _, t in collected.audits])
    facts = scan(lines)
    expected_assigned: Counter[tuple[str, str, str]] = Counter()
    expected_converted: Counter[tuple[str, str, str]] = Counter()
    for (journey, rule), customers in arms.items():
        for customer, a in customers.items():
            expected_assigned[journey, rule, a.arm] += 1
            times = [t for t, _ in facts.customers[customer].purchases]
            if any(a.eligible_ms < t <= a.eligible_ms + LIFT_WINDOW_MS for t in times):
                expected_converted[journey, rule, a.arm] += 1

    # Then the live counters hold the same numbers, and both arms are there
    registry = pipeline.metrics.registry
    assert sample(registry, "journey_lift_assigned_total") == expected_assigned
    assert sample(registry, "journey_lift_converted_total") == expected_converted
    assert {arm for _, _, arm in expected_assigned} == {"treated", "held_out"}


def request(rule: str = "offer", at_ms: int = 10 * DAY) -> TriggerRequest:
    return TriggerRequest(customer_id="c1", journey="j", rule=rule, reason="r", episode="e",
                          at_ms=at_ms)


def test_a_customer_is_assigned_once_and_converts_once_per_rule() -> None:
    # Given a treated customer whose first trigger was deferred, then sent
    tracker, state = LiftTracker(), CustomerState(customer_id="c1")
    counts: list[Count] = []
    tracker.observe(state, [TriggerSuppressed(request(), "quiet_hours", "deferred", 10 * DAY,
                                              11 * DAY)], None, counts)
    tracker.observe(state, [request().released(11 * DAY, "CODE")], None, counts)

    # When they buy twice within the window, and the state is written and read back between
    tracker.observe(state, [], 12 * DAY, counts)
    state = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    tracker.observe(state, [], 13 * DAY, counts)

    # Then they are one assignment and one conversion, counted from the deferral
    assert counts == [("j", "offer", "treated", "assigned"), ("j", "offer", "treated", "converted")]
    assert state.lift == {"j/offer": [10 * DAY, 0, 1]}


@pytest.mark.parametrize("reason", ["expired", "opted_out"])
def test_triggers_stopped_before_the_holdout_assign_nobody(reason: str) -> None:
    tracker, state = LiftTracker(), CustomerState(customer_id="c1")
    counts: list[Count] = []

    tracker.observe(state, [TriggerSuppressed(request(), reason, "suppressed", 10 * DAY)],
                    None, counts)

    assert counts == [] and state.lift == {}


def test_a_purchase_applied_before_the_held_out_decision_still_converts() -> None:
    # Given a customer who bought a day after the release, before the decision was taken
    tracker, state = LiftTracker(), CustomerState(customer_id="c1")
    counts: list[Count] = []
    state.purchase_times = [5 * DAY, 11 * DAY]

    # When the held-out decision for the release at day 10 arrives
    tracker.observe(state, [TriggerSuppressed(request(), "holdout_group", "held_out", 10 * DAY)],
                    None, counts)

    # Then the customer is held out and converted
    assert counts == [("j", "offer", "held_out", "assigned"),
                      ("j", "offer", "held_out", "converted")]


def test_a_state_without_a_holdout_is_written_as_before() -> None:
    assert "lift" not in CustomerState(customer_id="c1").to_dict()
