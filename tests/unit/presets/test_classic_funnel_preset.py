"""classic_funnel (seed 001): the 8 levels, the 1:80 funnel, and the invoice payment rate."""

from __future__ import annotations

from tests.unit.presets.support import (
    Customer,
    engine_for,
    fired,
    moves,
    path,
    reached,
    triggers,
    walk,
)

JOURNEY = "classic_funnel"
LEVELS = ["acquaintance", "choice", "purchase_intent", "deal", "payment", "receipt",
          "repeat_purchase", "regular"]


def test_a_b2b_buyer_climbs_all_eight_levels_to_regular_at_the_third_purchase() -> None:
    # seed 001's B2B reading: cold call, application, proposal, contract and invoice,
    # payment, shipment, repeat purchase, regular purchases.
    engine, _ = engine_for(JOURNEY)
    acme = Customer(engine, "acme")

    seen = walk(acme, JOURNEY, [
        ("cold_call", {}),
        ("form_fill", {}),
        ("offer_sent", {}),
        ("invoice_issued", {"amount": 10_000.0}),
        ("purchase", {"amount": 10_000.0}),
        ("shipment_received", {}),
        ("feedback", {"properties": {"sentiment": "positive"}}),
        ("first_use", {}),
        ("purchase", {"amount": 10_000.0}),
        ("purchase", {"amount": 10_000.0}),
    ])

    assert seen == [
        ("cold_call", "acquaintance", []),
        ("form_fill", "choice", ["time_limited_offer"]),
        ("offer_sent", "purchase_intent", []),
        ("invoice_issued", "deal", []),
        ("purchase", "payment", []),
        ("shipment_received", "receipt", []),
        ("feedback", "receipt", ["repeat_purchase_invitation"]),
        ("first_use", "receipt", ["first_use_check_in"]),
        ("purchase", "repeat_purchase", []),
        ("purchase", "regular", []),
    ]
    assert moves(acme.outputs, JOURNEY) == path(LEVELS)


def test_a_walk_in_purchase_lands_on_payment_and_the_first_use_check_in_is_service() -> None:
    # seed 001's retail reading: went to the shop, paid, started to use it.
    engine, _ = engine_for(JOURNEY)
    walk_in = Customer(engine, "walk-in")

    walk_in.touch("store_visit")
    walk_in.touch("purchase", amount=49.0)
    out = walk_in.touch("first_use")

    assert moves(walk_in.outputs, JOURNEY) == [
        (None, "choice"), ("choice", "payment"), ("payment", "receipt")]
    assert [(t.rule, t.kind) for t in triggers(out)] == [("first_use_check_in", "service")]


def test_a_free_trial_first_use_is_not_a_receipt() -> None:
    engine, _ = engine_for(JOURNEY)
    trial = Customer(engine, "trial")

    trial.touch("ad_click")
    trial.touch("first_use")

    assert trial.stage(JOURNEY) == "acquaintance"
    assert fired(trial.outputs) == []


def seed_001_month(paid: int) -> list[Customer]:
    """seed 001: 4,000 funnel entries a month; 100 invoices of 10,000 on average, `paid` of
    them paid. The 400 applications and 200 proposals between are ours."""
    engine, _ = engine_for(JOURNEY)
    customers = []
    for n in range(4_000):
        customer = Customer(engine, f"c{n:04}")
        customer.touch("ad_click", channel="yandex")
        if n < 400:
            customer.touch("form_fill")
        if n < 200:
            customer.touch("offer_sent")
        if n < 100:
            customer.touch("invoice_issued", amount=10_000.0)
        if n < paid:
            customer.touch("purchase", amount=10_000.0)
        customers.append(customer)
    return customers


def test_seed_001_four_thousand_entries_and_fifty_sales_convert_one_in_eighty() -> None:
    customers = seed_001_month(paid=50)

    _, definition = engine_for(JOURNEY)
    funnel = reached(customers, definition)
    assert funnel == {
        "acquaintance": 4_000, "choice": 400, "purchase_intent": 200, "deal": 100,
        "payment": 50, "receipt": 0, "repeat_purchase": 0, "regular": 0,
    }
    assert funnel["acquaintance"] / funnel["payment"] == 80  # "a conversion of 1:80"
    assert sum(fired(c.outputs).count("time_limited_offer") for c in customers) == 400


def test_seed_001_paying_60_of_100_invoices_instead_of_50_earns_100_000_more() -> None:
    def revenue(customers: list[Customer]) -> float:
        return sum(c.state.spend for c in customers if c.state is not None)

    half = seed_001_month(paid=50)
    sixty = seed_001_month(paid=60)

    _, definition = engine_for(JOURNEY)
    assert reached(half, definition)["payment"] / reached(half, definition)["deal"] == 0.5
    assert reached(sixty, definition)["payment"] / reached(sixty, definition)["deal"] == 0.6
    assert revenue(half) == 500_000
    assert revenue(sixty) - revenue(half) == 100_000
