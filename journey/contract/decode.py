"""Decoding and validation of raw touchpoint records: each is accepted or rejected with a reason.

The decoder is pure (the caller passes the current time) and never raises on bad input.
Fields are checked against their JSON types strictly (no "12" for a number, no true for
1, no epoch number for a date-time), as the published JSON Schema says. A touchpoint it
accepts can always be written in the canonical encoding and read back by the engine.

Reason codes (stable; dashboards and alerts key on them):

====================== ============================================================
not_utf8               the bytes are not UTF-8
invalid_json           the text is not JSON
not_an_object          the JSON is not an object
payload_too_large      the record exceeds the configured size limit
missing_field          a required field is absent
unexpected_field       a field the contract does not define
wrong_type             a field has the wrong JSON type
invalid_customer_id    customer_id is empty, too long or padded with whitespace
unknown_event_type     type is not in the vocabulary and unknown types are rejected
timezone_missing       occurred_at has no UTC offset
future_timestamp       occurred_at is further ahead than the allowed clock skew
invalid_amount         amount is negative, not finite or not a number
unsupported_schema     schema_version is not one this worker reads
invalid_value          any other constraint of the contract, including an occurred_at
                       outside the representable UTC range and a number in properties
                       that is not finite or does not fit in 64 bits
====================== ============================================================
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from journey.contract.records import Touchpoint
from journey.engine.events import to_epoch_ms
from journey.engine.vocabulary import BUILTIN_TYPES

#: Every reason code decode() can return.
REASONS: frozenset[str] = frozenset({
    "not_utf8", "invalid_json", "not_an_object", "payload_too_large", "missing_field",
    "unexpected_field", "wrong_type", "invalid_customer_id", "unknown_event_type",
    "timezone_missing", "future_timestamp", "invalid_amount", "unsupported_schema",
    "invalid_value",
})

# The canonical codec (orjson) reads integers in this range exactly; others it cannot.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

# The characters Rust's regex (which pydantic runs) counts as \s: Unicode White_Space.
# Python's \s differs (it includes U+001C..U+001F), so the class is spelled out.
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: The customer_id pattern of records.CustomerId, ^\S(.*\S)?$, as pydantic's Rust regex
#: reads it ("." is anything but a newline, "$" only the end), for Python's re.fullmatch.
CUSTOMER_ID_SHAPE = re.compile(f"[^{_WS}](?:[^\n]*[^{_WS}])?")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was not accepted."""

    reason: str
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """The configurable part of validation."""

    max_payload_bytes: int = 64 * 1024
    max_future_skew_ms: int = 5 * 60 * 1000
    accept_unknown_types: bool = False
    extra_types: frozenset[str] = frozenset()

    def knows(self, event_type: str) -> bool:
        return event_type in BUILTIN_TYPES or event_type in self.extra_types


_TYPE_ERRORS = {
    "string_type", "int_type", "float_type", "bool_type", "dict_type", "list_type",
    "int_parsing", "float_parsing", "model_type", "datetime_type", "int_from_float",
}
_SHOWN_INPUT_CHARS = 40


def decode(raw: bytes | None, *, policy: IngestPolicy, now_ms: int) -> Touchpoint | Rejection:
    """Turn raw record bytes into a valid Touchpoint, or say exactly why not."""
    if raw is None:
        return Rejection("not_an_object", "the record has no value (a tombstone)")
    if len(raw) > policy.max_payload_bytes:
        return Rejection(
            "payload_too_large",
            f"record is {len(raw)} bytes; the limit is {policy.max_payload_bytes}",
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"bytes are not UTF-8 at position {exc.start}")
    try:
        # Strict JSON mode: JSON types must match the schema; date-times still parse from text.
        touchpoint = Touchpoint.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        return _rejection_from(exc.errors()[0])
    problem = _unencodable(touchpoint)
    if problem is not None:
        return problem
    if not policy.accept_unknown_types and not policy.knows(touchpoint.type):
        return Rejection(
            "unknown_event_type",
            f"type {touchpoint.type!r} is not in the vocabulary "
            "(add it with JOURNEY_EXTRA_EVENT_TYPES or set JOURNEY_ACCEPT_UNKNOWN_TYPES)",
            "type",
        )
    ahead_ms = to_epoch_ms(touchpoint.occurred_at) - now_ms
    if ahead_ms > policy.max_future_skew_ms:
        return Rejection(
            "future_timestamp",
            f"occurred_at is {ahead_ms / 1000:.0f}s in the future; "
            f"the allowed clock skew is {policy.max_future_skew_ms / 1000:.0f}s",
            "occurred_at",
        )
    return touchpoint


def _rejection_from(error: ErrorDetails) -> Rejection:
    field = ".".join(str(p) for p in error["loc"]) or None
    kind = error["type"]
    head = str(error["loc"][0]) if error["loc"] else ""
    what = f"{field}: {error['msg']}"
    if kind == "json_invalid":
        return Rejection("invalid_json", f"not JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
    if not error["loc"]:
        kind_of = _json_kind(error["input"])
        return Rejection("not_an_object", f"expected a JSON object, got {kind_of}")
    if kind == "missing":
        return Rejection("missing_field", f"{field} is required", field)
    if kind == "extra_forbidden":
        return Rejection("unexpected_field", f"{field} is not a field of the contract", field)
    if head == "schema_version":
        shown = _shorten(repr(error["input"]))
        return Rejection("unsupported_schema", f"schema_version {shown} is not 1", field)
    if head == "customer_id" and kind not in _TYPE_ERRORS:
        return Rejection("invalid_customer_id", what, field)
    if head == "amount":
        return Rejection("invalid_amount", what, field)
    if kind == "timezone_aware":
        return Rejection("timezone_missing", f"{field} must carry a UTC offset", field)
    if kind in _TYPE_ERRORS:
        return Rejection("wrong_type", what, field)
    return Rejection("invalid_value", what, field)


def _unencodable(touchpoint: Touchpoint) -> Rejection | None:
    """A rejection when the touchpoint could not survive the canonical encoding, else None."""
    try:
        touchpoint.occurred_at.astimezone(UTC)
    except OverflowError:
        return Rejection(
            "invalid_value", "occurred_at is outside the range of dates in UTC", "occurred_at"
        )
    pending: list[tuple[str, Any]] = [("properties", touchpoint.properties)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            pending.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}.{i}", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            return Rejection("invalid_value", f"{path}: {value} is not a finite number", path)
        elif type(value) is int and not _INT_MIN <= value <= _INT_MAX:
            return Rejection("invalid_value", f"{path}: integer does not fit in 64 bits", path)
    return None


def _shorten(text: str) -> str:
    if len(text) <= _SHOWN_INPUT_CHARS:
        return text
    return text[: _SHOWN_INPUT_CHARS - 1] + "…"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
