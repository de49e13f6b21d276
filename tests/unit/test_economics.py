"""Unit economics say what they mean: churn per month with right-censoring, and the two
seeds' LTV formulas from the same inputs."""

from __future__ import annotations

import pytest

from journey.lab.economics import channel_economics
from journey.lab.facts import CustomerFacts, InputFacts

DAY = 86_400_000


def facts_of(purchase_days: dict[str, list[int]], end_day: int) -> InputFacts:
    facts = InputFacts(first_ms=0, last_ms=end_day * DAY, currency="EUR")
    for customer, days in purchase_days.items():
        facts.customers[customer] = CustomerFacts(
            first_ms=days[0] * DAY, source="web", purchases=[(d * DAY, 10.0) for d in days])
    return facts


def test_churn_counts_departures_per_active_month_up_to_the_censoring_point() -> None:
    # Given A, who bought in months 0-2 and was marked lost 130 days after; B, still buying
    # nothing after month 1 but never marked lost; and C, who left after the censoring point
    facts = facts_of({"a": [0, 40, 70], "b": [0, 35], "c": [0, 300]}, end_day=400)
    lost_at = {"a": 200 * DAY, "c": 350 * DAY}

    # When the economics are computed with a margin of 50%
    [row] = channel_economics(facts, lost_at, margin=0.5)

    # Then months count to day 270 (400 less the longest lag, 130 days): A is active at the
    # start of months 1-2 and departs in 2; B and C at the start of months 1-7, C's departure
    # (day 300) is not visible yet
    assert (row.active_months, row.departures) == (16, 1)
    assert row.monthly_churn == pytest.approx(1 / 16)
    # LTV 004 = margin of the active months' purchases (A's two, B's one) per active month
    # / churn; LTV 003 = margin x check x purchases per year x expected years
    assert row.monthly_margin == pytest.approx(0.5 * 30 / 16)
    assert row.ltv_seed004 == pytest.approx(15.0)
    assert row.purchases_per_year == pytest.approx(3 / 16 * 12)
    assert row.expected_years == pytest.approx(16 / 12)
    assert row.ltv_seed003 == pytest.approx(0.5 * 10 * (3 / 16 * 12) * (16 / 12))


def test_a_customer_who_bought_again_after_being_marked_lost_has_not_departed() -> None:
    facts = facts_of({"a": [0, 40, 250]}, end_day=400)

    [row] = channel_economics(facts, {"a": 200 * DAY}, margin=0.5)

    assert row.departures == 0 and row.ltv_seed004 is None and row.ltv_seed003 is None
