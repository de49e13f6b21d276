"""dentist (seed 000): free whitening, filling, crown; and the seed's 10 / 8 / 4 / 2 example."""

from __future__ import annotations

from collections import Counter

from journey.engine import TriggerRequest
from tests.unit.presets.support import (
    DAY_MS,
    Customer,
    engine_for,
    fired,
    moves,
    path,
    reached,
    walk,
)

JOURNEY = "dentist"


def test_a_lead_climbs_from_the_free_whitening_to_a_crown() -> None:
    engine, _ = engine_for(JOURNEY)
    maria = Customer(engine, "maria")

    seen = walk(maria, JOURNEY, [
        ("ad_click", {"channel": "facebook"}),
        ("appointment_booked", {"properties": {"product": "whitening"}}),
        ("showed_up", {"properties": {"product": "whitening"}}),
        ("diagnosis", {"properties": {"finding": "cavity"}}),
        ("purchase", {"amount": 150.0, "properties": {"product": "filling"}}),
        ("diagnosis", {"properties": {"finding": "cracked_tooth"}}),
        ("purchase", {"amount": 1_200.0, "properties": {"product": "crown"}}),
    ])

    assert seen == [
        ("ad_click", None, []),
        ("appointment_booked", "lead", []),
        ("showed_up", "irresistible_offer", ["nurture_after_offer"]),
        ("diagnosis", "irresistible_offer", ["treatment_follow_up"]),
        ("purchase", "filling", []),
        ("diagnosis", "filling", ["treatment_follow_up"]),
        ("purchase", "major_treatment", []),
    ]
    assert moves(maria.outputs, JOURNEY) == path(
        ["lead", "irresistible_offer", "filling", "major_treatment"])


def test_a_discounted_offer_is_a_purchase_and_still_the_irresistible_offer() -> None:
    engine, _ = engine_for(JOURNEY)
    jan = Customer(engine, "jan")

    jan.touch("form_fill")
    jan.touch("purchase", amount=19.0, properties={"product": "xray"})

    assert jan.stage(JOURNEY) == "irresistible_offer"


def test_a_no_show_is_asked_to_rebook_at_most_once_a_week() -> None:
    engine, _ = engine_for(JOURNEY)
    ola = Customer(engine, "ola")

    ola.touch("appointment_booked", properties={"product": "whitening"})
    first = ola.touch("no_show")
    again_soon = ola.touch("no_show", after_ms=3 * DAY_MS)
    a_week_on = ola.touch("no_show", after_ms=5 * DAY_MS)

    assert (fired(first), fired(again_soon), fired(a_week_on)) == (
        ["no_show_rebook"], [], ["no_show_rebook"])


def test_seed_000_ten_leads_eight_whitenings_four_fillings_two_crowns() -> None:
    # seed 000: 10 leads this month at $3-5 a lead from a Facebook campaign; 8 of the 10 come
    # for the free whitening; maybe 4 of the 8 have cavities; then 1 or 2 of the 4 need a
    # crown, a root canal or veneers. We take 2: one crown straight away, one root canal after
    # the filling.
    engine, definition = engine_for(JOURNEY)
    patients = []
    for n in range(10):
        patient = Customer(engine, f"lead{n}")
        patient.touch("ad_click", channel="facebook", source="facebook")
        patient.touch("appointment_booked", properties={"product": "whitening"})
        if n >= 8:
            patient.touch("no_show", after_ms=2 * DAY_MS)
        else:
            patient.touch("showed_up", after_ms=2 * DAY_MS, properties={"product": "whitening"})
        if n < 4:
            patient.touch("diagnosis", properties={"finding": "cavity"})
        if n in (1, 2, 3):
            patient.touch("purchase", after_ms=7 * DAY_MS, amount=150.0,
                          properties={"product": "filling"})
        if n == 0:
            patient.touch("purchase", after_ms=7 * DAY_MS, amount=1_200.0,
                          properties={"product": "crown"})
        if n == 1:
            patient.touch("purchase", after_ms=14 * DAY_MS, amount=900.0,
                          properties={"product": "root_canal"})
        patients.append(patient)

    assert reached(patients, definition) == {
        "lead": 10, "irresistible_offer": 8, "filling": 4, "major_treatment": 2}
    rules = Counter(o.rule for p in patients for o in p.outputs if isinstance(o, TriggerRequest))
    assert rules == {"nurture_after_offer": 8, "treatment_follow_up": 4, "no_show_rebook": 2}
    paying = [p for p in patients if p.state is not None and p.state.purchases > 0]
    assert len(paying) == 4  # the free whitening itself is not a purchase
