"""The fault suite's own yardsticks: the golden reference and the malformed-input mix."""

from __future__ import annotations

from collections import Counter

from journey.contract.decode import REASONS
from tests.fault.golden import golden, with_malformed


def test_the_golden_reference_gives_triggers_detections_and_a_final_state_per_customer() -> None:
    # Given a small backlog; When its reference is computed (it refuses to depend on "now")
    reference = golden(3000, 300)
    # Then it has triggers, stage changes, and a final state for every customer
    assert len(reference.trigger_ids) > 100
    assert len(reference.change_ids) > 100
    customers = {line.split(b'"customer_id":"')[1].split(b'"')[0].decode()
                 for line in reference.lines}
    assert set(reference.states) == customers
    assert all(state["customer_id"] == cid for cid, state in reference.states.items())


def test_the_malformed_mix_is_ten_percent_and_covers_every_reason_code_of_the_contract() -> None:
    lines = golden(3000, 300).lines
    mixed = with_malformed(lines)
    reasons = Counter(reason for _, reason in mixed.records if reason is not None)
    assert set(reasons) == REASONS
    assert abs(sum(reasons.values()) / len(mixed.records) - 0.10) < 0.001
    # the valid lines keep their order
    assert [raw for raw, reason in mixed.records if reason is None] == list(lines)
