"""The demo explains itself: what the sample holds, and why each output happened."""

from __future__ import annotations

from importlib import resources

from journey.cli.demo import Seen, describe_sample, explain, rule_notes
from journey.pipeline.settings import Settings


def _sample() -> list[bytes]:
    data = resources.files("journey.sample").joinpath("touchpoints.jsonl").read_bytes()
    return [line for line in data.splitlines() if line.strip()]


def test_the_demo_says_what_the_sample_contains() -> None:
    text = "\n".join(describe_sample(_sample(), Settings()))
    assert "a duplicate: event id s-005 is sent twice" in text
    assert "2 bad lines" in text
    assert "line 14: timezone_missing" in text
    assert "line 15: invalid_json" in text
    assert "an opt-out: ben on 2026-10-21" in text
    assert "JOURNEY_TRIGGER_HOLD_S" in text


def test_the_demo_gives_the_reason_of_each_output() -> None:
    seen: Seen = {
        "stage changes": [(b"anna", {"occurred_at": "2026-10-01T07:00:00Z", "customer_id": "anna",
                                     "journey": "touchpoint_journey", "from_stage": None,
                                     "to_stage": "acquaintance", "cause_event_id": "s-001"})],
        "triggers": [(b"carla", {"send_at": "2026-10-28T08:00:00Z", "customer_id": "carla",
                                 "journey": "lifecycle", "rule": "complaint_escalation",
                                 "kind": "service", "offer_code": "X", "trigger_id": "t" * 32,
                                 "reason": "complaint_unanswered", "details": {}})],
        "trigger audit": [
            (b"carla", {"occurred_at": "2026-10-06T13:00:00Z", "customer_id": "carla",
                        "rule": "warm_up_start", "decision": "cancelled", "reason": "converted"}),
            (b"ben", {"occurred_at": "2026-11-04T06:00:00Z", "customer_id": "ben",
                      "rule": "inactive_lead_reactivation", "decision": "suppressed",
                      "reason": "opted_out"})],
        "dead letters": [(None, {"reason": "invalid_json", "message": "not JSON"})],
    }
    text = "\n".join(explain(seen, _sample(), rule_notes(Settings())))
    assert "because of s-001 (ad_click)" in text
    assert "why: a complaint had no complaint_response within 48 h" in text
    assert "cancelled: converted - cancelled by the journey's exit 'converted'" in text
    assert "suppressed: opted_out - the customer opted out" in text
