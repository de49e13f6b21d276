"""real_estate (seed 003): buyer database to home services, and the agency's automation."""

from __future__ import annotations

from journey.engine import TriggerSuppressed
from tests.unit.presets.support import (
    DAY_MS,
    Customer,
    engine_for,
    fired,
    moves,
    path,
    triggers,
    walk,
)

JOURNEY = "real_estate"


def test_a_buyer_walks_from_the_database_to_insurance_and_furniture() -> None:
    engine, _ = engine_for(JOURNEY)
    buyer = Customer(engine, "buyer")

    seen = walk(buyer, JOURNEY, [
        ("signup", {"channel": "web"}),
        ("property_viewing", {"after_ms": 7 * DAY_MS}),
        ("property_viewing", {"after_ms": 3 * DAY_MS}),
        ("property_viewing", {"after_ms": 3 * DAY_MS}),
        ("consultation", {"after_ms": 5 * DAY_MS, "properties": {"product": "credit_advice"}}),
        ("purchase", {"after_ms": 30 * DAY_MS, "amount": 650_000.0,
                      "properties": {"product": "property"}}),
        ("purchase", {"after_ms": 10 * DAY_MS, "amount": 40_000.0,
                      "properties": {"product": "renovation"}}),
        ("purchase", {"after_ms": 20 * DAY_MS, "amount": 8_000.0,
                      "properties": {"product": "furniture"}}),
    ])

    assert seen == [
        ("signup", "buyer_database", ["buyer_tips_sequence"]),
        ("property_viewing", "viewings", []),
        ("property_viewing", "viewings", []),
        ("property_viewing", "viewings", ["credit_advisor_offer"]),
        ("consultation", "credit_advice", []),
        ("purchase", "property_purchase", ["renovation_moving_offer"]),
        ("purchase", "renovation_moving", []),
        # released two weeks after the property purchase; this touch (day 30) shows it
        ("purchase", "insurance_furniture", ["insurance_furniture_offer"]),
    ]
    assert moves(buyer.outputs, JOURNEY) == path(
        ["buyer_database", "viewings", "credit_advice", "property_purchase",
         "renovation_moving", "insurance_furniture"])


def test_seed_003_the_agency_automation_in_its_order_and_channels() -> None:
    # seed 003: the buyer database gets an e-mail cycle; "after viewing several properties he
    # receives an SMS proposing a meeting with a credit advisor"; after the purchase the
    # renovation and moving offer; "in the following weeks" insurance and furniture.
    engine, _ = engine_for(JOURNEY)
    buyer = Customer(engine, "buyer")

    buyer.touch("newsletter_subscribe", channel="web")
    buyer.touch("property_viewing", after_ms=7 * DAY_MS)
    second = buyer.touch("property_viewing", after_ms=2 * DAY_MS)
    third = buyer.touch("property_viewing", after_ms=2 * DAY_MS)
    buyer.touch("property_viewing", after_ms=2 * DAY_MS)
    bought = buyer.touch("contract_signed", after_ms=40 * DAY_MS,
                         properties={"product": "property"})
    next_day = buyer.touch("email_opened", after_ms=DAY_MS, channel="email")
    weeks_later = buyer.touch("email_opened", after_ms=14 * DAY_MS, channel="email")

    assert fired(second) == []  # two viewings are not yet "several"
    assert [(t.rule, t.channel) for t in triggers(third)] == [("credit_advisor_offer", "sms")]
    assert fired(bought) == ["renovation_moving_offer"]
    assert fired(next_day) == []  # "in the following weeks", not with the next day's touch
    assert fired(weeks_later) == ["insurance_furniture_offer"]
    assert [(t.rule, t.channel) for t in triggers(buyer.outputs)] == [
        ("buyer_tips_sequence", "email"),
        ("credit_advisor_offer", "sms"),
        ("renovation_moving_offer", "web"),
        ("insurance_furniture_offer", "web"),
    ]


def test_a_buyer_who_already_met_the_credit_advisor_gets_no_credit_sms() -> None:
    engine, _ = engine_for(JOURNEY)
    buyer = Customer(engine, "buyer")

    buyer.touch("signup")
    buyer.touch("appointment_booked", properties={"product": "credit_advice"})
    for _ in range(3):
        buyer.touch("property_viewing", after_ms=DAY_MS)

    assert buyer.stage(JOURNEY) == "credit_advice"
    assert "credit_advisor_offer" not in fired(buyer.outputs)


def test_a_silent_buyer_still_gets_the_insurance_and_furniture_offer_two_weeks_on() -> None:
    engine, _ = engine_for(JOURNEY)
    buyer = Customer(engine, "buyer")
    buyer.touch("signup")
    bought = buyer.touch("purchase", after_ms=30 * DAY_MS, amount=500_000.0,
                         properties={"product": "property"})
    assert fired(bought) == ["renovation_moving_offer"]
    assert buyer.state is not None

    # Nothing more from the buyer; event time moves on to three weeks after the purchase.
    later = engine.on_time(buyer.state, buyer.now_ms + 21 * DAY_MS).outputs

    offers = [t for t in triggers(later) if t.rule == "insurance_furniture_offer"]
    assert len(offers) == 1
    assert offers[0].send_at_ms == buyer.now_ms + 14 * DAY_MS


def test_buying_furniture_before_the_promotion_cancels_it() -> None:
    engine, _ = engine_for(JOURNEY)
    buyer = Customer(engine, "buyer")
    buyer.touch("signup")
    buyer.touch("purchase", after_ms=30 * DAY_MS, properties={"product": "property"})
    out = buyer.touch("purchase", after_ms=3 * DAY_MS, properties={"product": "furniture"})
    assert buyer.state is not None
    out += engine.on_time(buyer.state, buyer.now_ms + 30 * DAY_MS).outputs

    assert "insurance_furniture_offer" not in fired(out)
    assert [(o.request.rule, o.decision, o.reason) for o in out
            if isinstance(o, TriggerSuppressed)] == [
        ("insurance_furniture_offer", "cancelled", "insured_or_furnished")]
