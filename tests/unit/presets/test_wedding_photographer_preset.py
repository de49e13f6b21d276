"""wedding_photographer (seed 003): wedding, maternity, newborn, 1st birthday, family."""

from __future__ import annotations

from tests.unit.presets.support import DAY_MS, Customer, engine_for, fired, moves, path, walk

JOURNEY = "wedding_photographer"


def session(product: str, after_days: int, amount: float) -> tuple[str, dict[str, object]]:
    return ("purchase", {"after_ms": after_days * DAY_MS, "amount": amount,
                         "properties": {"product": product}})


def test_a_wedding_couple_comes_back_for_every_session_and_is_offered_the_next() -> None:
    # seed 003: wedding, "soon" a maternity session, then the newborn, the 1st birthday, then
    # the 2-year and family sessions.
    engine, _ = engine_for(JOURNEY)
    couple = Customer(engine, "couple")

    seen = walk(couple, JOURNEY, [
        ("ad_click", {"channel": "instagram", "source": "instagram"}),
        session("wedding", 30, 3_000.0),
        session("maternity", 400, 600.0),
        session("newborn", 120, 700.0),
        session("first_birthday", 365, 500.0),
        session("family", 365, 600.0),
    ])

    assert seen == [
        ("ad_click", None, []),
        ("purchase", "wedding", ["offer_maternity_session"]),
        ("purchase", "maternity", ["offer_newborn_session"]),
        ("purchase", "newborn", ["offer_first_birthday_session"]),
        ("purchase", "first_birthday", ["offer_family_session"]),
        ("purchase", "family", []),
    ]
    assert moves(couple.outputs, JOURNEY) == path(
        ["wedding", "maternity", "newborn", "first_birthday", "family"])


def test_a_family_that_skips_the_maternity_session_is_offered_the_session_after_newborn() -> None:
    engine, _ = engine_for(JOURNEY)
    couple = Customer(engine, "couple")

    couple.touch("purchase", amount=3_000.0, properties={"product": "wedding"})
    out = couple.touch("purchase", after_ms=500 * DAY_MS, amount=700.0,
                       properties={"product": "newborn"})

    assert moves(couple.outputs, JOURNEY) == [(None, "wedding"), ("wedding", "newborn")]
    assert fired(out) == ["offer_first_birthday_session"]


def test_the_two_year_session_counts_as_a_family_session() -> None:
    engine, _ = engine_for(JOURNEY)
    couple = Customer(engine, "couple")

    couple.touch("purchase", amount=500.0, properties={"product": "first_birthday"})
    couple.touch("purchase", after_ms=365 * DAY_MS, amount=500.0,
                 properties={"product": "second_birthday"})

    assert couple.stage(JOURNEY) == "family"
