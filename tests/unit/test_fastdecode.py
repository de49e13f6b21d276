"""The fast ingest path agrees with decode() on every input: same verdict, reason, field, bytes.

decode() (the pydantic Touchpoint model) is the reference. For any bytes and any policy,
decode_touchpoint, decode_event and decode_canonical must accept exactly what decode() accepts,
give the same Event and canonical bytes as the model path, and return decode()'s own Rejection
otherwise.
And acceptance must be fast: the model may only be asked about records it then rejects, or
about the documented unusual ones (a number at or beyond 2**63, or a NaN or Infinity token
that a repeated name then overrides).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from journey.contract import codec
from journey.contract.decode import IngestPolicy, Rejection, decode
from journey.contract.fastdecode import (
    Accepted,
    _accepted,
    decode_canonical,
    decode_event,
    decode_touchpoint,
)
from journey.contract.records import Touchpoint
from journey.engine.vocabulary import BUILTIN_TYPES
from tests.unit.test_ingest_properties import (
    DEFAULT,
    MANY,
    NOW_MS,
    SOME,
    VALID,
    field_names,
    json_values,
    mutated_fields,
    mutated_values,
    policies,
)


def agree(raw: bytes | None, policy: IngestPolicy = DEFAULT) -> Touchpoint | Rejection:
    """Both paths on one input; every difference fails the test."""
    reference = decode(raw, policy=policy, now_ms=NOW_MS)
    event = decode_event(raw, policy=policy, now_ms=NOW_MS)
    canonical = decode_canonical(raw, policy=policy, now_ms=NOW_MS)
    accepted = decode_touchpoint(raw, policy=policy, now_ms=NOW_MS)
    if isinstance(reference, Rejection):
        assert event == reference, (event, reference)
        assert canonical == reference, (canonical, reference)
        assert accepted == reference, (accepted, reference)
        # The fast check never takes a record the model refuses.
        assert _accepted(raw, policy, NOW_MS) is None
        return reference
    expected_bytes = codec.touchpoint_to_bytes(reference)
    assert canonical == (reference.customer_id, expected_bytes)
    assert event == codec.event_from_touchpoint(reference)
    assert isinstance(accepted, Accepted)
    assert accepted.event == event and accepted.customer_id == reference.customer_id
    assert accepted.canonical() == expected_bytes
    offset = reference.occurred_at.utcoffset()
    if offset is not None and offset % timedelta(minutes=1) == timedelta(0):
        # Through the internal topic and back gives the same Event. (Offsets with seconds
        # are cut to minutes by the canonical encoding, so there the two hops shift the time.)
        assert event == codec.event_from_bytes(expected_bytes)
    if _strict_json(raw) and not _has_a_huge_number(orjson.loads(expected_bytes)):
        assert _accepted(raw, policy, NOW_MS) is not None, "accepted, but not on the fast path"
    return reference


def _strict_json(raw: bytes | None) -> bool:
    """False for text only pydantic's parser reads: NaN or Infinity under a repeated name."""
    try:
        orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return False
    return True


def _has_a_huge_number(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_a_huge_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_a_huge_number(v) for v in value)
    return type(value) in (int, float) and abs(value) >= 2**63


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@MANY
@given(st.binary(max_size=600))
@example(b'{"event_id":"e\xed\xa0\x80","customer_id":"a","type":"purchase",'
         b'"occurred_at":"2026-10-01T11:59:00Z"}')  # a UTF-8-encoded surrogate
@example(b'\xef\xbb\xbf{"event_id":"e","customer_id":"a","type":"purchase",'
         b'"occurred_at":"2026-10-01T11:59:00Z"}')  # a byte order mark
@example(b' {"event_id":"e","customer_id":"a","type":"purchase",'
         b'"occurred_at":"2026-10-01T11:59:00Z"}\r\n\t')
def test_fast_path_agrees_on_arbitrary_bytes(raw: bytes) -> None:
    agree(raw)


def test_fast_path_agrees_on_a_tombstone_and_an_empty_record() -> None:
    agree(None)
    agree(b"")


@MANY
@given(json_values)
def test_fast_path_agrees_on_arbitrary_json(value: Any) -> None:
    agree(_dumps(value))


@MANY
@given(st.dictionaries(field_names, json_values, max_size=8), policies)
def test_fast_path_agrees_on_arbitrary_objects(value: dict[str, Any], policy: IngestPolicy) -> None:
    agree(_dumps(value), policy)


@MANY
@given(field=mutated_fields, value=mutated_values, delete=st.booleans(), policy=policies)
@example(field="customer_id", value="\x1c", delete=False, policy=IngestPolicy())
@example(field="customer_id", value="a\u2028", delete=False, policy=IngestPolicy())
@example(field="customer_id", value="a\nb", delete=False, policy=IngestPolicy())
@example(field="customer_id", value="a\rb", delete=False, policy=IngestPolicy())
@example(field="schema_version", value=1.0, delete=False, policy=IngestPolicy())
@example(field="properties", value=None, delete=False, policy=IngestPolicy())
@example(field="amount", value=2**63, delete=False, policy=IngestPolicy())
@example(field="properties", value={"x": -(2**63) - 1}, delete=False, policy=IngestPolicy())
def test_fast_path_agrees_on_a_valid_document_with_one_field_mutated(
    field: str, value: Any, delete: bool, policy: IngestPolicy
) -> None:
    mutated = dict(VALID)
    if delete:
        mutated.pop(field, None)
    else:
        mutated[field] = value
    agree(_dumps(mutated), policy)


@MANY
@given(changes=st.dictionaries(mutated_fields, mutated_values, max_size=4),
       dropped=st.sets(st.sampled_from(sorted(VALID)), max_size=3), policy=policies)
def test_fast_path_agrees_on_a_valid_document_with_several_fields_changed(
    changes: dict[str, Any], dropped: set[str], policy: IngestPolicy
) -> None:
    mutated = {k: v for k, v in {**VALID, **changes}.items() if k not in dropped}
    agree(_dumps(mutated), policy)


offsets_in_seconds = st.one_of(
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: m * 60),
    st.integers(min_value=-86_399, max_value=86_399),
)
# Wall-clock readings (in UTC here); each test replaces the offset with the one it is about.
moments = st.datetimes(timezones=st.just(UTC))
_FIRST, _LAST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
edge_moments = st.sampled_from([_FIRST, _FIRST + timedelta(minutes=30), _LAST,
                                _LAST - timedelta(hours=12)])
time_shapes = st.sampled_from(["iso", "iso-z", "space", "minutes", "millis", "basic"])


def _written(moment: datetime, offset_s: int, shape: str) -> str:
    zone = timezone(timedelta(seconds=offset_s))
    aware = moment.replace(tzinfo=zone)
    if shape == "iso-z" and offset_s == 0:
        return aware.isoformat().replace("+00:00", "Z")
    if shape == "space":
        return aware.isoformat(sep=" ")
    if shape == "minutes":
        return aware.isoformat(timespec="minutes")
    if shape == "millis":
        return aware.isoformat(timespec="milliseconds")
    if shape == "basic":
        return aware.strftime("%Y%m%dT%H%M%S") + ("Z" if offset_s == 0 else "+0100")
    return aware.isoformat()


@MANY
@given(moment=moments | edge_moments, offset_s=offsets_in_seconds, shape=time_shapes,
       naive=st.booleans(), skew=st.integers(min_value=0, max_value=10**9))
@example(moment=datetime.fromtimestamp(NOW_MS / 1000 + 300, UTC), offset_s=0, shape="iso",
         naive=False, skew=300_000)
@example(moment=datetime.fromtimestamp(NOW_MS / 1000 + 300.001, UTC), offset_s=0, shape="iso",
         naive=False, skew=300_000)
def test_fast_path_agrees_on_any_event_time(
    moment: datetime, offset_s: int, shape: str, naive: bool, skew: int
) -> None:
    # Given a touchpoint whose occurred_at is written in one of the ISO 8601 shapes
    text = moment.replace(tzinfo=None).isoformat() if naive else _written(moment, offset_s, shape)
    policy = IngestPolicy(max_future_skew_ms=skew)
    # Then both paths agree on it, including its canonical form and its instant
    agree(_dumps({**VALID, "occurred_at": text}), policy)


@SOME
@given(depth=st.integers(min_value=190, max_value=210),
       inside=st.sampled_from(["[", '{"a":']), where=st.sampled_from(["properties", "amount"]))
def test_fast_path_agrees_at_the_parsers_depth_limit(depth: int, inside: str, where: str) -> None:
    closing = "]" if inside == "[" else "}"
    nested = inside * depth + "1" + closing * depth
    head = _dumps({k: v for k, v in VALID.items() if k != where})[:-1]
    value = '{"x": ' + nested + "}" if where == "properties" else nested
    agree(head + f', "{where}": {value}}}'.encode())


@SOME
@given(field=st.sampled_from(sorted(VALID)), first=mutated_values, second=mutated_values)
def test_fast_path_agrees_when_a_field_is_written_twice(field: str, first: Any,
                                                        second: Any) -> None:
    # JSON leaves duplicate names to the reader; both readers must pick the same one.
    head = _dumps(VALID)[:-1]
    agree(head + f', "{field}": {_dumps(first).decode()}, "{field}": '
                 f'{_dumps(second).decode()}}}'.encode())


@SOME
@given(number=st.sampled_from([
    "18446744073709551615", "18446744073709551616", "-9223372036854775808",
    "-9223372036854775809", "9223372036854775807", "9223372036854775808", "1e19", "-1e19",
    "9007199254740993", "1E400", "-1e400", "1e-400", "-0", "-0.0", "0.1e1",
    "100000000000000000000000",
    "1.7976931348623157e308", "4.9406564584124654e-324", "NaN", "Infinity", "-Infinity",
]), where=st.sampled_from(["amount", "properties", "schema_version", "nested"]))
def test_fast_path_agrees_on_numbers_at_the_edges_of_64_bits(number: str, where: str) -> None:
    head = _dumps({k: v for k, v in VALID.items() if k not in (where, "schema_version")})[:-1]
    value = {"properties": '{"x": %s}', "nested": '{"x": [{"y": %s}]}'}.get(where, "%s") % number
    field = "properties" if where == "nested" else where
    agree(head + f', "{field}": {value}}}'.encode())


printable_ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]),
                        min_size=1, max_size=130)


@MANY
@given(
    event_id=printable_ids, customer_id=printable_ids,
    event_type=st.sampled_from(sorted(BUILTIN_TYPES)) | st.from_regex(r"[a-z][a-z0-9_]{0,64}",
                                                                      fullmatch=True),
    amount=st.none() | st.floats(min_value=0, max_value=1e300) | st.integers(0, 2**64),
    labels=st.dictionaries(st.sampled_from(["channel", "source", "campaign", "currency",
                                            "timezone"]),
                           st.none() | st.sampled_from(["EUR", "usd", "Europe/Warsaw", "UTC",
                                                        "Mars/Base", "x" * 129, ""])
                           | printable_ids),
    properties=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    policy=policies,
)
def test_fast_path_agrees_on_touchpoints_near_the_contract(
    event_id: str, customer_id: str, event_type: str, amount: float | None,
    labels: dict[str, Any], properties: dict[str, Any], policy: IngestPolicy,
) -> None:
    sent = {"event_id": event_id, "customer_id": customer_id, "type": event_type,
            "occurred_at": datetime.fromtimestamp(NOW_MS / 1000 - 60, UTC).isoformat(),
            "amount": amount, "properties": properties, **labels}
    agree(_dumps(sent), policy)


def test_a_common_touchpoint_takes_the_fast_path_and_reads_as_the_model_reads_it() -> None:
    # Given an ordinary purchase
    raw = _dumps(VALID)
    # When it is decoded both ways / Then the fast path accepted it without the model
    reference = agree(raw)
    assert isinstance(reference, Touchpoint)
    assert _accepted(raw, DEFAULT, NOW_MS) is not None
    event = decode_event(raw, policy=DEFAULT, now_ms=NOW_MS)
    assert not isinstance(event, Rejection)
    assert (event.customer_id, event.type, event.amount) == ("anna", "purchase", 19.5)


def test_a_rejection_from_the_fast_path_is_the_models_own_rejection() -> None:
    raw = _dumps({**VALID, "amount": -1})
    result = decode_event(raw, policy=DEFAULT, now_ms=NOW_MS)
    assert result == Rejection("invalid_amount",
                               "amount: Input should be greater than or equal to 0", "amount")


def test_every_built_in_type_is_accepted_by_both_paths() -> None:
    # The fast path skips the type pattern for built-in types: each must satisfy it.
    for event_type in sorted(BUILTIN_TYPES):
        raw = _dumps({**VALID, "type": event_type})
        assert isinstance(agree(raw), Touchpoint), event_type
