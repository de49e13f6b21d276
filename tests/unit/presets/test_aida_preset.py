"""aida (seed 001): attention, interest, desire, action, and the seed's proportional expansion."""

from __future__ import annotations

from tests.unit.presets.support import Customer, engine_for, fired, moves, path, reached, walk

JOURNEY = "aida"


def test_a_customer_walks_attention_interest_desire_action() -> None:
    engine, _ = engine_for(JOURNEY)
    anna = Customer(engine, "anna")

    seen = walk(anna, JOURNEY, [
        ("ad_impression", {"channel": "google"}),
        ("ad_click", {"channel": "google"}),
        ("form_fill", {}),
        ("purchase", {"amount": 120.0}),
    ])

    assert seen == [
        ("ad_impression", "attention", []),
        ("ad_click", "interest", []),
        ("form_fill", "desire", ["offer_on_desire"]),
        ("purchase", "action", []),
    ]
    assert moves(anna.outputs, JOURNEY) == path(["attention", "interest", "desire", "action"])


def test_a_direct_purchase_jumps_to_action_without_the_offer() -> None:
    engine, _ = engine_for(JOURNEY)
    ben = Customer(engine, "ben")

    ben.touch("purchase", amount=120.0)

    assert moves(ben.outputs, JOURNEY) == [(None, "action")]
    assert fired(ben.outputs) == []


def visitors(count: int, calls: int, sales: int) -> list[Customer]:
    engine, _ = engine_for(JOURNEY)
    customers = []
    for n in range(count):
        customer = Customer(engine, f"v{n:04}")
        customer.touch("site_visit")
        if n < calls:
            customer.touch("inbound_call")
        if n < sales:
            customer.touch("purchase", amount=100.0)
        customers.append(customer)
    return customers


def test_seed_001_proportional_expansion_ten_times_the_visitors_ten_times_the_sales() -> None:
    # seed 001: "there were 200 visitors, 4 calls, and only one sale; grow the visitors to
    # 2,000, then come [40] calls and 10 sales". The seed prints 400 calls; 40 keeps both of its
    # rates (1 call in 50 visitors, 1 sale in 4 calls) and its 10 sales.
    _, definition = engine_for(JOURNEY)

    before = reached(visitors(200, calls=4, sales=1), definition)
    after = reached(visitors(2_000, calls=40, sales=10), definition)

    assert before == {"attention": 200, "interest": 200, "desire": 4, "action": 1}
    assert after == {"attention": 2_000, "interest": 2_000, "desire": 40, "action": 10}
    assert before["interest"] / before["action"] == after["interest"] / after["action"] == 200
