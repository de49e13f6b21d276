"""value_ladder (seeds 000, 001): entry offer, first low-cost purchase, core, premium."""

from __future__ import annotations

from tests.unit.presets.support import Customer, engine_for, fired, moves, path, walk

JOURNEY = "value_ladder"


def test_seed_001_russells_dentist_patient_climbs_every_rung() -> None:
    # seed 001, after Russell Brunson: a free cleaning ("give a try"), a whitening kit (the
    # first low-cost sale), the main product, then a care programme with check-ups.
    engine, _ = engine_for(JOURNEY)
    patient = Customer(engine, "patient")

    seen = walk(patient, JOURNEY, [
        ("ad_click", {"channel": "facebook"}),
        ("showed_up", {"properties": {"tier": "entry", "product": "cleaning"}}),
        ("purchase", {"amount": 49.0, "properties": {"tier": "low", "product": "whitening"}}),
        ("purchase", {"amount": 2_500.0, "properties": {"tier": "core", "product": "braces"}}),
        ("loyalty_joined", {"properties": {"programme": "care_plan"}}),
    ])

    assert seen == [
        ("ad_click", "prospect", []),
        ("showed_up", "entry_offer", ["start_nurture"]),
        ("purchase", "first_purchase", ["offer_core"]),
        ("purchase", "core", ["offer_premium"]),
        ("loyalty_joined", "premium", []),
    ]
    assert moves(patient.outputs, JOURNEY) == path(
        ["prospect", "entry_offer", "first_purchase", "core", "premium"])


def test_a_walk_in_skips_to_the_core_rung_and_is_offered_premium() -> None:
    engine, _ = engine_for(JOURNEY)
    walk_in = Customer(engine, "walk-in")

    walk_in.touch("purchase", amount=2_500.0, properties={"tier": "core"})

    assert moves(walk_in.outputs, JOURNEY) == [(None, "core")]
    assert fired(walk_in.outputs) == ["offer_premium"]


def test_a_purchase_without_a_tier_does_not_move_the_customer_on_the_ladder() -> None:
    engine, _ = engine_for(JOURNEY)
    buyer = Customer(engine, "buyer")

    buyer.touch("site_visit")
    buyer.touch("purchase", amount=75.0)

    assert buyer.stage(JOURNEY) == "prospect"


def test_joining_the_programme_without_a_purchase_is_not_premium() -> None:
    engine, _ = engine_for(JOURNEY)
    member = Customer(engine, "member")

    member.touch("loyalty_joined")

    assert member.stage(JOURNEY) == "prospect"
