"""lead_readiness (seed 004): mini-book 7/10, webinar 8/10, paid-link click -> hand to sales."""

from __future__ import annotations

import pytest

from tests.unit.presets.support import (
    DAY_MS,
    MINUTE_MS,
    Customer,
    engine_for,
    fired,
    moves,
    path,
    suppressed,
    triggers,
    walk,
)

JOURNEY = "lead_readiness"


def test_seed_004_mini_book_seven_webinar_eight_paid_link_hands_over_to_sales() -> None:
    # seed 004: "downloaded a free mini-book: 7 out of 10; then came to a free webinar: 8 out
    # of 10; clicks a link to a paid product during the webinar: almost ready to buy. Here the
    # work is handed over to your sales department."
    engine, definition = engine_for(JOURNEY)
    half_life = definition.scoring.half_life
    lead = Customer(engine, "lead")

    lead.touch("site_visit")
    lead.touch("minibook_downloaded", after_ms=10 * MINUTE_MS)
    after_book = lead.score(JOURNEY, half_life)
    lead.touch("webinar_attended", after_ms=2 * DAY_MS)
    after_webinar = lead.score(JOURNEY, half_life)
    handed_over = lead.touch("paid_link_clicked", after_ms=40 * MINUTE_MS)

    assert after_book == 7
    assert after_webinar == pytest.approx(8, abs=0.5)  # 7, two days decayed, + 1
    assert [(t.rule, t.reason, t.stage) for t in triggers(handed_over)] == [
        ("sales_ready", "hand_over_to_sales", "sales_ready")]
    assert triggers(handed_over)[0].score == pytest.approx(15.68, abs=0.01)
    assert moves(lead.outputs, JOURNEY) == path(
        ["prospect", "read_minibook", "attended_webinar", "sales_ready"])


def test_a_lead_walks_every_stage_and_is_handed_over_once() -> None:
    engine, _ = engine_for(JOURNEY)
    lead = Customer(engine, "lead")

    seen = walk(lead, JOURNEY, [
        ("ad_click", {}),
        ("minibook_downloaded", {}),
        ("webinar_attended", {}),
        ("paid_link_clicked", {}),
        ("paid_link_clicked", {}),
    ])

    assert seen == [
        ("ad_click", "prospect", []),
        ("minibook_downloaded", "read_minibook", []),
        ("webinar_attended", "attended_webinar", []),
        ("paid_link_clicked", "sales_ready", ["sales_ready"]),
        ("paid_link_clicked", "sales_ready", []),
    ]


def test_a_mini_book_and_a_webinar_without_the_click_are_not_ready() -> None:
    engine, _ = engine_for(JOURNEY)
    lead = Customer(engine, "lead")

    lead.touch("minibook_downloaded")
    lead.touch("webinar_attended", after_ms=MINUTE_MS)

    assert lead.stage(JOURNEY) == "attended_webinar"
    assert fired(lead.outputs) == []


def test_a_paid_link_click_alone_is_not_ready() -> None:
    engine, _ = engine_for(JOURNEY)
    lead = Customer(engine, "lead")

    lead.touch("paid_link_clicked")

    assert lead.stage(JOURNEY) == "prospect"
    assert fired(lead.outputs) == []


def test_a_webinar_two_months_before_the_click_has_cooled_down() -> None:
    # The 30-day half-life is ours: a webinar 60 days old counts a quarter, 0.25 + 8 < 9.
    engine, _ = engine_for(JOURNEY)
    cooled = Customer(engine, "cooled")

    cooled.touch("webinar_attended")
    cooled.touch("paid_link_clicked", after_ms=60 * DAY_MS)

    assert cooled.stage(JOURNEY) == "attended_webinar"
    assert fired(cooled.outputs) == []


def test_an_opted_out_lead_is_not_handed_to_sales() -> None:
    engine, _ = engine_for(JOURNEY)
    lead = Customer(engine, "lead")

    for event_type in ["minibook_downloaded", "webinar_attended", "opt_out",
                       "paid_link_clicked"]:
        lead.touch(event_type, after_ms=MINUTE_MS)

    assert lead.stage(JOURNEY) == "sales_ready"
    assert fired(lead.outputs) == []
    assert suppressed(lead.outputs) == ["sales_ready"]
