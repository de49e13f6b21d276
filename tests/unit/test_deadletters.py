"""Dead letters are keyed by where they came from, and name the customers their original
bytes name (what an erasure's sweep looks for)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from journey.contract import codec
from journey.contract.deadletters import dead_letter_key, named_customers
from journey.contract.decode import Rejection
from journey.contract.topics import Topics
from journey.pipeline.routing import Router


def _letter(key: bytes | None, value: bytes) -> bytes:
    return codec.dead_letter_bytes(Rejection("invalid_json", "not JSON"), topic="t", partition=1,
                                   offset=7, key=key, value=value,
                                   at=datetime(2026, 3, 1, tzinfo=UTC))


def test_a_dead_letter_is_keyed_by_its_source_topic_partition_and_offset() -> None:
    routed = Router(Topics.named(prefix="p-")).dead_letter(
        Rejection("invalid_json", "not JSON"), topic="p-touchpoints", partition=2, offset=41,
        key=b"ada", value=b"{", at=datetime(2026, 3, 1, tzinfo=UTC))
    assert (routed.topic, routed.key) == ("p-dead-letters", b"p-touchpoints:2:41")
    assert dead_letter_key("p-touchpoints", 2, 41) == b"p-touchpoints:2:41"


def test_a_dead_letter_names_its_original_key_and_the_customer_id_of_its_value() -> None:
    assert named_customers(_letter(b"ada", b'{"customer_id": "ada", "email": "a@x.org"')) == {
        "ada"}
    assert named_customers(_letter(None, b'{"customer_id": "bob", "type": "nope"}')) == {"bob"}
    assert named_customers(_letter(b"k-1", b'{"customer_id": "carol"}')) == {"k-1", "carol"}


def test_a_dead_letter_naming_nobody_or_no_dead_letter_at_all_names_no_customer() -> None:
    assert named_customers(_letter(None, b"not json")) == set()
    assert named_customers(_letter(None, b'{"customer_id": 12}')) == set()
    assert named_customers(_letter(None, b"")) == set()
    assert named_customers(b"garbage") == set()
    assert named_customers(b'{"original_key_b64": "!!not base64"}') == set()
    assert named_customers(b'{"original_value_b64": "' + base64.b64encode(b"[1]") + b'"}') \
        == set()
