"""The touchpoint decoder: each documented reason code, and the message naming the culprit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from journey.contract import codec
from journey.contract.decode import REASONS, IngestPolicy, Rejection, decode
from journey.contract.records import Touchpoint
from journey.pipeline.settings import Settings

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DEFAULT = IngestPolicy()
VALID: dict[str, Any] = {
    "event_id": "e-1",
    "customer_id": "anna",
    "type": "purchase",
    "occurred_at": "2026-10-01T11:59:00+00:00",
    "amount": 19.5,
    "currency": "EUR",
}


def doc(**changes: Any) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def without(field: str) -> bytes:
    return json.dumps({k: v for k, v in VALID.items() if k != field}).encode()


def text(body: str) -> bytes:
    """A document whose tail is raw JSON text, for tokens json.dumps will not write."""
    return ('{"event_id":"e-1","customer_id":"anna","type":"purchase",'
            '"occurred_at":"2026-10-01T11:59:00Z",' + body + "}").encode()


def rejected(raw: bytes | None, policy: IngestPolicy = DEFAULT) -> Rejection:
    result = decode(raw, policy=policy, now_ms=NOW_MS)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    assert result.reason in REASONS
    return result


def accepted(raw: bytes, policy: IngestPolicy = DEFAULT) -> Touchpoint:
    result = decode(raw, policy=policy, now_ms=NOW_MS)
    assert isinstance(result, Touchpoint), f"expected a touchpoint, got {result!r}"
    return result


# --- accepted ------------------------------------------------------------------------------


def test_a_valid_touchpoint_is_accepted_with_its_fields() -> None:
    touchpoint = accepted(doc())
    assert (touchpoint.customer_id, touchpoint.type) == ("anna", "purchase")
    assert touchpoint.amount == 19.5
    assert touchpoint.occurred_at == datetime(2026, 10, 1, 11, 59, tzinfo=UTC)


def test_an_integer_amount_is_a_number() -> None:
    assert accepted(doc(amount=20)).amount == 20.0


# --- the bytes and the document ------------------------------------------------------------


def test_bytes_that_are_not_utf8_are_rejected_with_the_position() -> None:
    r = rejected(b'{"event_id": "\xff"}')
    assert r.reason == "not_utf8"
    assert "position 14" in r.message


def test_text_that_is_not_json_is_rejected() -> None:
    r = rejected(b'{"event_id": ')
    assert r.reason == "invalid_json"
    assert r.message.startswith("not JSON")


def test_json_nested_deeper_than_the_parser_allows_is_rejected_not_raised() -> None:
    r = rejected(b"[" * 5000 + b"]" * 5000)
    assert r.reason == "invalid_json"
    assert "recursion" in r.message


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[1, 2]", "an array"), (b'"hi"', "a string"), (b"42", "a number"),
     (b"true", "a boolean"), (b"null", "null")],
)
def test_json_that_is_not_an_object_is_rejected_naming_what_it_is(raw: bytes, kind: str) -> None:
    r = rejected(raw)
    assert r.reason == "not_an_object"
    assert r.message.endswith(kind)


def test_a_tombstone_is_not_an_object() -> None:
    r = rejected(None)
    assert r.reason == "not_an_object"
    assert "tombstone" in r.message


def test_a_payload_over_the_size_limit_is_rejected_with_both_sizes() -> None:
    # Given a policy with a small limit and a record one byte over it
    raw = doc(properties={"note": "x" * 200})
    policy = IngestPolicy(max_payload_bytes=len(raw) - 1)
    # When it is decoded / Then the size and the limit are both named
    r = rejected(raw, policy)
    assert r.reason == "payload_too_large"
    assert str(len(raw)) in r.message
    assert str(len(raw) - 1) in r.message


def test_a_payload_at_the_size_limit_is_accepted() -> None:
    raw = doc()
    accepted(raw, IngestPolicy(max_payload_bytes=len(raw)))


# --- fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "customer_id", "type", "occurred_at"])
def test_a_missing_required_field_is_named(field: str) -> None:
    r = rejected(without(field))
    assert r.reason == "missing_field"
    assert r.field == field
    assert field in r.message


def test_a_field_outside_the_contract_is_named() -> None:
    r = rejected(doc(customer="anna"))
    assert r.reason == "unexpected_field"
    assert r.field == "customer"
    assert "customer" in r.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_id", 17), ("customer_id", 42), ("type", ["purchase"]), ("channel", 5),
     ("properties", [1, 2]), ("occurred_at", 1790000000), ("occurred_at", None)],
)
def test_a_field_of_the_wrong_json_type_is_named(field: str, value: Any) -> None:
    r = rejected(doc(**{field: value}))
    assert r.reason == "wrong_type"
    assert r.field == field
    assert r.message.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("customer_id", "why"),
    [("", "at least 1"), ("c" * 129, "at most 128"), (" anna", "pattern"),
     ("anna ", "pattern"), ("\tanna", "pattern")],
)
def test_an_empty_oversized_or_padded_customer_id_is_rejected(customer_id: str, why: str) -> None:
    r = rejected(doc(customer_id=customer_id))
    assert r.reason == "invalid_customer_id"
    assert r.field == "customer_id"
    assert why in r.message


def test_a_customer_id_of_exactly_128_characters_is_accepted() -> None:
    assert accepted(doc(customer_id="c" * 128)).customer_id == "c" * 128


def test_an_unknown_event_type_is_rejected_by_default_and_says_how_to_allow_it() -> None:
    r = rejected(doc(type="tiktok_duet"))
    assert r.reason == "unknown_event_type"
    assert r.field == "type"
    assert "'tiktok_duet'" in r.message
    assert "JOURNEY_EXTRA_EVENT_TYPES" in r.message


def test_an_unknown_event_type_is_accepted_when_the_policy_accepts_unknown_types() -> None:
    policy = IngestPolicy(accept_unknown_types=True)
    assert accepted(doc(type="tiktok_duet"), policy).type == "tiktok_duet"


def test_an_unknown_event_type_is_accepted_when_listed_as_an_extra_type() -> None:
    policy = IngestPolicy(extra_types=frozenset({"tiktok_duet"}))
    assert accepted(doc(type="tiktok_duet"), policy).type == "tiktok_duet"
    assert rejected(doc(type="tiktok_stitch"), policy).reason == "unknown_event_type"


def test_an_event_type_that_is_not_snake_case_is_an_invalid_value() -> None:
    r = rejected(doc(type="Purchase"))
    assert r.reason == "invalid_value"
    assert r.field == "type"


# --- time -------------------------------------------------------------------------------------


def test_a_timestamp_without_a_utc_offset_is_rejected() -> None:
    r = rejected(doc(occurred_at="2026-10-01T11:59:00"))
    assert r.reason == "timezone_missing"
    assert r.field == "occurred_at"
    assert "occurred_at" in r.message


def test_a_timestamp_beyond_the_clock_skew_tolerance_is_rejected_with_both_numbers() -> None:
    # Given an event ten minutes ahead of the worker's clock and a five-minute tolerance
    r = rejected(doc(occurred_at="2026-10-01T12:10:00Z"))
    # Then the gap and the tolerance are named
    assert r.reason == "future_timestamp"
    assert r.field == "occurred_at"
    assert "600s in the future" in r.message
    assert "300s" in r.message


def test_a_timestamp_within_the_clock_skew_tolerance_is_accepted() -> None:
    accepted(doc(occurred_at="2026-10-01T12:04:59Z"))


def test_the_clock_skew_tolerance_comes_from_the_policy() -> None:
    policy = IngestPolicy(max_future_skew_ms=3_600_000)
    accepted(doc(occurred_at="2026-10-01T12:10:00Z"), policy)


def test_a_timestamp_outside_the_utc_date_range_is_rejected() -> None:
    # Year 1 at +05:00 is in year 0 in UTC, which Python dates cannot hold; the engine would fail.
    r = rejected(doc(occurred_at="0001-01-01T00:00:00+05:00"))
    assert r.reason == "invalid_value"
    assert r.field == "occurred_at"


def test_a_timestamp_that_is_not_a_date_time_is_an_invalid_value() -> None:
    r = rejected(doc(occurred_at="yesterday"))
    assert r.reason == "invalid_value"
    assert r.field == "occurred_at"


# --- amount -----------------------------------------------------------------------------------


def test_a_negative_amount_is_rejected() -> None:
    r = rejected(doc(amount=-0.01))
    assert r.reason == "invalid_amount"
    assert r.field == "amount"
    assert "greater than or equal to 0" in r.message


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_an_amount_that_is_not_finite_is_rejected(token: str) -> None:
    r = rejected(text(f'"amount":{token}'))
    assert r.reason == "invalid_amount"
    assert r.field == "amount"
    assert "amount" in r.message


@pytest.mark.parametrize("value", ["19.5", True])
def test_an_amount_that_is_not_a_json_number_is_rejected(value: Any) -> None:
    r = rejected(doc(amount=value))
    assert r.reason == "invalid_amount"
    assert r.field == "amount"


# --- schema version ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unsupported_schema_version_is_rejected_naming_it(version: Any) -> None:
    r = rejected(doc(schema_version=version))
    assert r.reason == "unsupported_schema"
    assert r.field == "schema_version"
    assert repr(version) in r.message


def test_a_huge_schema_version_is_shortened_in_the_message() -> None:
    r = rejected(doc(schema_version="9" * 5000))
    assert r.reason == "unsupported_schema"
    assert len(r.message) < 100


def test_a_boolean_schema_version_is_rejected() -> None:
    assert rejected(doc(schema_version=True)).field == "schema_version"


def test_an_epoch_string_occurred_at_is_rejected_naming_the_field() -> None:
    r = rejected(doc(occurred_at="1790000000"))
    assert r.field == "occurred_at"
    assert "epoch" in r.message


def test_an_unknown_time_zone_is_rejected_naming_the_field() -> None:
    r = rejected(doc(timezone="Not/AZone"))
    assert r.field == "timezone"
    assert "IANA" in r.message


# --- other constraints and what the canonical encoding can carry ------------------------------


def test_a_lower_case_currency_is_an_invalid_value() -> None:
    r = rejected(doc(currency="eur"))
    assert r.reason == "invalid_value"
    assert r.field == "currency"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "1e400"])
def test_a_number_in_properties_that_is_not_finite_is_rejected_with_its_path(token: str) -> None:
    r = rejected(text(f'"properties":{{"cart":[1, {{"price":{token}}}]}}'))
    assert r.reason == "invalid_value"
    assert r.field == "properties.cart.1.price"


def test_an_integer_in_properties_beyond_64_bits_is_rejected_with_its_path() -> None:
    r = rejected(doc(properties={"order_no": 2**64}))
    assert r.reason == "invalid_value"
    assert r.field == "properties.order_no"
    assert "64 bits" in r.message


def test_a_lone_surrogate_escape_is_not_json() -> None:
    assert rejected(text('"properties":{"note":"\\ud800"}')).reason == "invalid_json"


def test_an_accepted_touchpoint_survives_the_canonical_encoding() -> None:
    # Given a touchpoint with nested properties at the edges of what is allowed
    raw = doc(properties={"n": [2**63 - 1, -(2**63), 1.5e308], "deep": [[[{"a": None}]]]})
    touchpoint = accepted(raw)
    # When the worker encodes it for the engine / Then the engine reads it back unchanged
    event = codec.event_from_bytes(codec.touchpoint_to_bytes(touchpoint))
    assert event.properties == touchpoint.properties


# --- policy from settings ---------------------------------------------------------------------


def test_settings_ingest_policy_uses_the_ingestion_settings() -> None:
    settings = Settings(
        max_payload_bytes=1000, max_future_skew_s=60, accept_unknown_types=True,
        extra_event_types=["tiktok_duet"],
    )
    assert settings.ingest_policy() == IngestPolicy(
        max_payload_bytes=1000, max_future_skew_ms=60_000, accept_unknown_types=True,
        extra_types=frozenset({"tiktok_duet"}) | settings.definition_types(),
    )


def test_default_settings_give_the_default_policy() -> None:
    assert Settings().ingest_policy() == IngestPolicy()


@pytest.mark.parametrize("value", ["tiktok_duet,tiktok_stitch", " tiktok_duet , tiktok_stitch,",
                                   '["tiktok_duet", "tiktok_stitch"]'])
def test_extra_event_types_read_from_a_comma_list_or_a_json_list(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEY_EXTRA_EVENT_TYPES", value)
    assert Settings().extra_event_types == ["tiktok_duet", "tiktok_stitch"]


def test_an_extra_event_type_that_could_never_match_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEY_EXTRA_EVENT_TYPES", "TikTok-Duet")
    with pytest.raises(ValueError, match="extra_event_types"):
        Settings()


def test_ingestion_settings_have_documented_defaults() -> None:
    settings = Settings()
    assert settings.max_payload_bytes == 65536
    assert settings.max_future_skew_s == 300
    assert settings.accept_unknown_types is False
    assert settings.extra_event_types == []
    assert settings.dedupe_horizon_s == 7 * 24 * 3600
