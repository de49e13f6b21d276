"""Holdout lift by intention to treat: who is in which arm from when, what counts as bought,
and the intervals and p-values adjusted for many rules."""

from __future__ import annotations

import pytest

from journey.lab.lift import Lift, assign, holm_adjust, lifts, newcombe, newcombe_p, units

DAY = 86_400_000
WINDOW = 30 * DAY
J = "touchpoint_journey"


def lift_rows(sent: list[tuple[str, str, str, int]],
              decided: list[tuple[str, str, str, str, str, int]],
              purchases: dict[str, list[int]], primary: str | None = None) -> list[Lift]:
    return lifts(units(sent, decided, purchases, window_ms=WINDOW, end_ms=100 * DAY),
                 primary=primary)


def test_a_customer_is_counted_once_per_rule_from_the_first_eligible_decision() -> None:
    # Given a customer whose rule fired three times: deferred, then sent, then cooled down
    decided = [(J, "warm_up", "deferred", "quiet_hours", "c1", 10 * DAY),
               (J, "warm_up", "suppressed", "cooldown", "c1", 40 * DAY)]
    sent = [(J, "warm_up", "c1", 11 * DAY)]

    # When assigned
    arms = assign(sent, decided)

    # Then they are one treated customer, eligible from the deferral
    assert {c: (a.arm, a.eligible_ms) for c, a in arms[(J, "warm_up")].items()} == {
        "c1": ("treated", 10 * DAY)}


def test_checks_before_the_holdout_do_not_make_a_customer_eligible() -> None:
    # Given an expired and an opted-out trigger, and one cancelled by an exit before release
    decided = [(J, "offer", "suppressed", "expired", "c1", DAY),
               (J, "offer", "suppressed", "opted_out", "c2", DAY),
               (J, "offer", "cancelled", "purchased", "c3", DAY)]

    # Then nobody is assigned
    assert assign([], decided) == {}


def test_a_treated_customer_stays_treated_when_the_contact_budget_stops_the_send() -> None:
    # Given a treated customer the budget suppressed, and a held-out one, both later buying
    decided = [(J, "offer", "suppressed", "contact_budget", "t1", 10 * DAY),
               (J, "offer", "held_out", "holdout_group", "h1", 10 * DAY)]
    purchases = {"t1": [12 * DAY], "h1": [12 * DAY]}

    # When the lift is computed
    [row] = lift_rows([], decided, purchases)

    # Then both count, the treated one as never sent to
    assert (row.treated, row.treated_converted, row.treated_sent) == (1, 1, 0)
    assert (row.held_out, row.held_out_converted) == (1, 1)
    assert row.send_rate == 0.0


def test_bought_means_after_eligibility_and_within_the_window() -> None:
    # Given four held-out and one treated customer eligible at day 10
    decided = [(J, "offer", "held_out", "holdout_group", c, 10 * DAY)
               for c in ("at", "inside", "edge", "late")]
    sent = [(J, "offer", "t", 10 * DAY)]
    purchases = {"at": [10 * DAY], "inside": [5 * DAY, 20 * DAY], "edge": [40 * DAY],
                 "late": [40 * DAY + 1]}

    # When the lift is computed
    [row] = lift_rows(sent, decided, purchases)

    # Then a purchase at the very moment or after the window does not count; the edge does
    assert (row.held_out, row.held_out_converted) == (4, 2)


def test_customers_eligible_less_than_a_window_before_the_end_are_left_out_of_both_arms() -> None:
    decided = [(J, "offer", "held_out", "holdout_group", "h_old", 10 * DAY),
               (J, "offer", "held_out", "holdout_group", "h_new", 80 * DAY)]
    sent = [(J, "offer", "t_old", 10 * DAY), (J, "offer", "t_new", 80 * DAY)]

    [row] = lift_rows(sent, decided, {})

    assert (row.treated, row.held_out, row.too_recent) == (1, 1, 2)


def test_rules_that_held_nobody_out_have_no_row() -> None:
    assert lift_rows([(J, "service", "c1", DAY)], [], {}) == []


def test_holm_adjusts_the_smallest_p_value_by_the_number_of_rules_and_keeps_the_order() -> None:
    assert holm_adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_the_p_value_is_where_newcombes_interval_touches_zero() -> None:
    # Given a difference of 60/100 against 45/100
    p = newcombe_p(60, 100, 45, 100)

    # Then the interval at 1 - p has zero on its lower bound, and p is between 1% and 5%
    _, low, _ = newcombe(60, 100, 45, 100, level=1 - p)
    assert low == pytest.approx(0.0, abs=1e-9)
    assert 0.01 < p < 0.05
    assert newcombe_p(5, 10, 5, 10) == 1.0


def test_adjusted_intervals_widen_with_the_number_of_rules_but_the_primary_rule_keeps_95() -> None:
    # Given three rules with the same counts, one named primary
    decided: list[tuple[str, str, str, str, str, int]] = []
    sent: list[tuple[str, str, str, int]] = []
    purchases: dict[str, list[int]] = {}
    for rule in ("a", "b", "c"):
        for i in range(200):
            customer = f"{rule}{i}"
            if i % 2:
                decided.append((J, rule, "held_out", "holdout_group", customer, DAY))
            else:
                sent.append((J, rule, customer, DAY))
            if i % 5 == 0 or (i % 2 == 0 and i % 3 == 0):
                purchases[customer] = [2 * DAY]

    # When computed with "a" as the primary rule
    rows = {x.rule: x for x in lift_rows(sent, decided, purchases, primary="a")}

    # Then "a" has the plain 95% interval and p-value; "b" and "c" are adjusted for two rules
    a, b = rows["a"], rows["b"]
    assert a.primary and a.p_adjusted == a.p_value
    assert (a.low, a.high) == pytest.approx(newcombe(a.treated_converted, a.treated,
                                                     a.held_out_converted, a.held_out)[1:])
    assert b.p_adjusted == pytest.approx(min(1.0, 2 * (b.p_value or 0)))
    assert (b.low or 0) < (a.low or 0) and (b.high or 0) > (a.high or 0)
