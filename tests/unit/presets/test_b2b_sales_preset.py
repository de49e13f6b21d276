"""b2b_sales (seed 001): seven stages, the optional presentation, and no stage before its time."""

from __future__ import annotations

from tests.unit.presets.support import Customer, engine_for, fired, moves, path, triggers, walk

JOURNEY = "b2b_sales"
STAGES = ["primary_contact", "qualification", "offer", "presentation", "terms", "fulfilment",
          "committed"]


def test_a_deal_with_a_presentation_walks_all_seven_stages() -> None:
    engine, _ = engine_for(JOURNEY)
    acme = Customer(engine, "acme")

    seen = walk(acme, JOURNEY, [
        ("inbound_call", {}),
        ("lead_qualified", {"properties": {"segment": "wholesale"}}),
        ("offer_sent", {}),
        ("presentation_held", {}),
        ("contract_signed", {}),
        ("invoice_issued", {"amount": 50_000.0}),
        ("payment", {"amount": 50_000.0}),
        ("documents_completed", {}),
    ])

    assert seen == [
        ("inbound_call", "primary_contact", []),
        ("lead_qualified", "qualification", ["prepare_offer"]),
        ("offer_sent", "offer", []),
        ("presentation_held", "presentation", []),
        ("contract_signed", "terms", []),
        ("invoice_issued", "fulfilment", []),
        ("payment", "fulfilment", ["complete_documents"]),
        ("documents_completed", "committed", []),
    ]
    assert moves(acme.outputs, JOURNEY) == path(STAGES)


def test_a_deal_without_a_presentation_goes_from_offer_to_terms() -> None:
    # seed 001 on the presentation: "is there a need for it at all? Only the managers decide".
    engine, _ = engine_for(JOURNEY)
    beta = Customer(engine, "beta")

    for event_type in ["cold_call", "lead_qualified", "offer_sent", "contract_signed",
                       "purchase", "documents_completed"]:
        beta.touch(event_type)

    assert moves(beta.outputs, JOURNEY) == path(
        ["primary_contact", "qualification", "offer", "terms", "fulfilment", "committed"])


def test_no_stage_is_entered_before_the_previous_one_is_complete() -> None:
    # seed 001: "the program does not advance to the next stage before the previous one has
    # been properly completed".
    engine, _ = engine_for(JOURNEY)
    gamma = Customer(engine, "gamma")

    gamma.touch("inbound_call")
    gamma.touch("lead_qualified")
    gamma.touch("contract_signed")  # terms agreed, but no offer was ever sent
    assert gamma.stage(JOURNEY) == "qualification"

    gamma.touch("offer_sent")  # the missing evidence arrives: the terms are now complete
    assert gamma.stage(JOURNEY) == "terms"
    assert moves(gamma.outputs, JOURNEY) == path(["primary_contact", "qualification", "terms"])


def test_a_deal_is_committed_only_once_its_documents_are_complete() -> None:
    # seed 001: "only after the relevant documents are completed are the transactions
    # officially considered completed".
    engine, _ = engine_for(JOURNEY)
    delta = Customer(engine, "delta")
    for event_type in ["inbound_call", "lead_qualified", "offer_sent", "contract_signed"]:
        delta.touch(event_type)

    delta.touch("documents_completed")  # documents, but no order yet
    assert delta.stage(JOURNEY) == "terms"
    delta.touch("purchase", amount=50_000.0)

    assert delta.stage(JOURNEY) == "committed"
    assert "complete_documents" not in fired(delta.outputs)


def test_the_documents_reminder_is_service_and_survives_an_opt_out() -> None:
    engine, _ = engine_for(JOURNEY)
    eps = Customer(engine, "eps")
    for event_type in ["inbound_call", "lead_qualified", "offer_sent", "contract_signed",
                       "invoice_issued", "opt_out"]:
        eps.touch(event_type)

    out = eps.touch("shipment_received")

    assert [(t.rule, t.kind) for t in triggers(out)] == [("complete_documents", "service")]
