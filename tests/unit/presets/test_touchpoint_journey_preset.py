"""touchpoint_journey (seed 002): the 9 touchpoint steps, and the paid offer after 7 touches."""

from __future__ import annotations

from tests.unit.presets.support import DAY_MS, Customer, engine_for, fired, moves, path, walk

JOURNEY = "touchpoint_journey"


def test_a_tripwire_buyer_walks_from_acquaintance_to_promoter() -> None:
    engine, _ = engine_for(JOURNEY)
    anna = Customer(engine, "anna")

    seen = walk(anna, JOURNEY, [
        ("banner_view", {"channel": "facebook"}),
        ("lead_magnet_download", {}),
        ("purchase", {"amount": 9.0, "properties": {"tier": "tripwire"}}),
        ("first_use", {}),
        ("purchase", {"amount": 99.0, "properties": {"tier": "core"}}),
        ("referral", {}),
        ("referral", {"properties": {"rewarded": True}}),
    ])

    assert seen == [
        ("banner_view", "acquaintance", ["warm_up_start"]),
        ("lead_magnet_download", "subscribed", []),
        ("purchase", "first_purchase", ["first_purchase_follow_up", "feedback_request"]),
        ("first_use", "engaged", []),
        # The core product after the tripwire satisfies; it is not yet a return.
        ("purchase", "satisfied", []),
        ("referral", "fan", ["promoter_invitation"]),
        ("referral", "promoter", []),
    ]
    assert moves(anna.outputs, JOURNEY) == path(
        ["acquaintance", "subscribed", "first_purchase", "engaged", "satisfied", "fan",
         "promoter"])


def test_a_walk_in_core_buyer_passes_satisfied_and_nurtured_before_returning() -> None:
    engine, _ = engine_for(JOURNEY)
    ben = Customer(engine, "ben")

    seen = walk(ben, JOURNEY, [
        ("store_visit", {}),
        ("newsletter_subscribe", {}),
        ("purchase", {"amount": 99.0, "properties": {"tier": "core"}}),
        ("consultation", {}),
        ("purchase", {"amount": 99.0, "properties": {"tier": "core"}, "after_ms": 40 * DAY_MS}),
        ("referral", {}),
        ("referral", {"properties": {"rewarded": True}}),
    ])

    assert seen == [
        ("store_visit", "acquaintance", ["warm_up_start"]),
        ("newsletter_subscribe", "subscribed", []),
        ("purchase", "satisfied", ["first_purchase_follow_up", "feedback_request"]),
        ("consultation", "nurtured", []),
        # 40 days on, past the 30-day limit, so feedback is asked for again.
        ("purchase", "returning", ["feedback_request"]),
        ("referral", "fan", ["promoter_invitation"]),
        ("referral", "promoter", []),
    ]
    assert moves(ben.outputs, JOURNEY) == path(
        ["acquaintance", "subscribed", "satisfied", "nurtured", "returning", "fan", "promoter"])


def test_seed_002_order_a_tripwire_buyer_walks_all_nine_steps() -> None:
    engine, _ = engine_for(JOURNEY)
    cara = Customer(engine, "cara")

    walk(cara, JOURNEY, [
        ("banner_view", {}),
        ("lead_magnet_download", {}),
        ("purchase", {"amount": 9.0, "properties": {"tier": "tripwire"}}),
        ("first_use", {}),
        ("purchase", {"amount": 99.0, "properties": {"tier": "core"}}),
        ("consultation", {}),
        ("purchase", {"amount": 99.0, "properties": {"tier": "core"}}),
        ("referral", {}),
        ("referral", {"properties": {"rewarded": True}}),
    ])

    assert moves(cara.outputs, JOURNEY) == path(
        ["acquaintance", "subscribed", "first_purchase", "engaged", "satisfied", "nurtured",
         "returning", "fan", "promoter"])


def test_seed_002_a_paid_offer_after_seven_touchpoints() -> None:
    # seed 002: "7 touchpoints, and we can safely make a paid offer".
    engine, _ = engine_for(JOURNEY)
    dana = Customer(engine, "dana")
    touches = ["ad_click", "site_visit", "lead_magnet_download", "email_opened",
               "content_view", "email_clicked", "webinar_attended", "email_opened"]

    fired_per_touch = [fired(dana.touch(t)) for t in touches]

    assert [("paid_offer_ready" in f) for f in fired_per_touch] == [
        False, False, False, False, False, False, True, False]


def test_seed_002_no_paid_offer_for_someone_who_already_bought() -> None:
    engine, _ = engine_for(JOURNEY)
    eve = Customer(engine, "eve")

    for event_type in ["ad_click", "purchase", "email_opened", "content_view", "site_visit",
                       "email_clicked", "webinar_attended", "email_opened"]:
        eve.touch(event_type)

    assert "paid_offer_ready" not in fired(eve.outputs)
