"""Decoding and validation of raw touchpoint records: each is accepted or rejected with a reason.

The decoder is pure (the caller passes the current time) and never raises on bad input.

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
invalid_value          any other constraint of the contract
====================== ============================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from journey.contracts import Touchpoint
from journey.engine.events import to_epoch_ms
from journey.vocabulary import BUILTIN_TYPES


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
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"bytes are not UTF-8 at position {exc.start}")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return Rejection("invalid_json", f"not JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejection("not_an_object", f"expected a JSON object, got {_json_kind(doc)}")
    try:
        touchpoint = Touchpoint.model_validate(doc)
    except ValidationError as exc:
        return _rejection_from(exc.errors()[0])
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
    if kind == "missing":
        return Rejection("missing_field", f"{field} is required", field)
    if kind == "extra_forbidden":
        return Rejection("unexpected_field", f"{field} is not a field of the contract", field)
    if head == "schema_version":
        return Rejection("unsupported_schema", f"schema_version {error['input']!r} is not 1", field)
    if head == "customer_id" and kind not in _TYPE_ERRORS:
        return Rejection("invalid_customer_id", what, field)
    if head == "amount":
        return Rejection("invalid_amount", what, field)
    if kind == "timezone_aware":
        return Rejection("timezone_missing", f"{field} must carry a UTC offset", field)
    if kind in _TYPE_ERRORS:
        return Rejection("wrong_type", what, field)
    return Rejection("invalid_value", what, field)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
