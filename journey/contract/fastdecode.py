"""The hot path of ingest: raw touchpoint bytes to the engine's Event or the canonical bytes.

decode() in journey.contract.decode is the reference: pydantic's Touchpoint model, the one
source of the published schema. This module accepts exactly the records decode() accepts,
for the same policy and clock, without building a model: orjson parses, and a few plain
checks restate the model's constraints. Whenever it is not certain that decode() accepts a
record it asks decode() itself, which then either accepts it or says why not, with decode()'s
reason code, message and field. Rejections are rare, so only acceptance needs to be fast; the
only records decode() accepts that take the slow way are unusual ones: a number at or beyond
2**63 (orjson reads an integer beyond 64 bits as a float, so it cannot tell), or a NaN or
Infinity token hidden under a name repeated later in the object (orjson refuses the token).

tests/unit/test_fastdecode.py proves the agreement with hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter

from journey.contract.codec import event_from_touchpoint, touchpoint_to_bytes
from journey.contract.decode import CUSTOMER_ID_SHAPE, IngestPolicy, Rejection, decode
from journey.contract.records import Touchpoint, _known_zone
from journey.engine.events import _EPOCH, _MS, Event
from journey.engine.vocabulary import BUILTIN_TYPES

_FIELDS = frozenset({
    "schema_version", "event_id", "customer_id", "type", "occurred_at", "channel", "source",
    "campaign", "amount", "currency", "timezone", "properties",
})
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# pydantic's JSON parser refuses documents nested deeper than this.
_MAX_DEPTH = 200
# orjson reads an integer beyond 64 bits as a float, where pydantic reads an int (which
# decode() rejects in properties); floats this large are left for decode() to judge.
_BIG = float(2**63)
_LABEL_FIELDS = ("channel", "source", "campaign")
_ABSENT = object()
_SERIALISE_TIME = TypeAdapter(datetime).dump_python


class Accepted:
    """A touchpoint decode() accepts: its Event now, its canonical bytes if asked for.

    The pipeline needs the Event when the record's key is its customer id (one hop) and the
    canonical bytes only when it must re-key the record through the internal topic.
    """

    __slots__ = ("_doc", "_touchpoint", "customer_id", "event")

    def __init__(self, event: Event, doc: dict[str, Any] | None,
                 touchpoint: Touchpoint | None = None) -> None:
        self.event = event
        self.customer_id = event.customer_id
        self._doc = doc
        self._touchpoint = touchpoint

    def canonical(self) -> bytes:
        """The bytes codec.touchpoint_to_bytes writes of it, for the internal events topic."""
        if self._doc is not None:
            return _canonical(self._doc)
        assert self._touchpoint is not None
        return touchpoint_to_bytes(self._touchpoint)


def decode_touchpoint(
    raw: bytes | None, *, policy: IngestPolicy, now_ms: int
) -> Accepted | Rejection:
    """What decode() decides, without building a model for a record it accepts."""
    doc = _accepted(raw, policy, now_ms)
    if doc is None:
        result = decode(raw, policy=policy, now_ms=now_ms)
        if isinstance(result, Rejection):
            return result
        return Accepted(event_from_touchpoint(result), None, result)
    return Accepted(_event(doc), doc)


def decode_event(raw: bytes | None, *, policy: IngestPolicy, now_ms: int) -> Event | Rejection:
    """The engine's Event of a touchpoint decode() accepts, or decode()'s rejection."""
    doc = _accepted(raw, policy, now_ms)
    if doc is None:
        result = decode(raw, policy=policy, now_ms=now_ms)
        return result if isinstance(result, Rejection) else event_from_touchpoint(result)
    return _event(doc)


def decode_canonical(
    raw: bytes | None, *, policy: IngestPolicy, now_ms: int
) -> tuple[str, bytes] | Rejection:
    """(customer_id, the canonical bytes codec.touchpoint_to_bytes writes), or the rejection."""
    doc = _accepted(raw, policy, now_ms)
    if doc is None:
        result = decode(raw, policy=policy, now_ms=now_ms)
        if isinstance(result, Rejection):
            return result
        return result.customer_id, touchpoint_to_bytes(result)
    return doc["customer_id"], _canonical(doc)


def _event(doc: dict[str, Any]) -> Event:
    get = doc.get
    amount = get("amount")
    return Event(doc["event_id"], doc["customer_id"], doc["type"], doc["at_ms"], get("channel"),
                 get("source"), get("campaign"), None if amount is None else float(amount),
                 get("currency"), get("timezone"), get("properties", {}))


def _canonical(doc: dict[str, Any]) -> bytes:
    get = doc.get
    moment: datetime = doc["occurred_at"]
    offset = moment.utcoffset()
    out: dict[str, Any] = {
        "schema_version": 1, "event_id": doc["event_id"], "customer_id": doc["customer_id"],
        "type": doc["type"], "occurred_at": moment,
    }
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        # orjson and pydantic agree on +HH:MM; an offset with seconds pydantic cuts its own way.
        out["occurred_at"] = _SERIALISE_TIME(moment, mode="json")
    for name in _LABEL_FIELDS:
        value = get(name)
        if value is not None:
            out[name] = value
    amount = get("amount")
    if amount is not None:
        out["amount"] = float(amount)
    for name in ("currency", "timezone"):
        value = get(name)
        if value is not None:
            out[name] = value
    out["properties"] = get("properties", {})
    return orjson.dumps(out, option=orjson.OPT_UTC_Z)


def _accepted(raw: bytes | None, policy: IngestPolicy, now_ms: int) -> dict[str, Any] | None:
    """The parsed document (occurred_at parsed, at_ms added) if decode() surely accepts it.

    None means "ask decode()": a rejection, or one of the unusual records above. One flat
    function on purpose: this runs once per touchpoint, and calls cost.
    """
    if raw is None or len(raw) > policy.max_payload_bytes:
        return None
    try:
        doc = orjson.loads(raw)  # also refuses bytes that are not UTF-8, as decode() does
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or not doc.keys() <= _FIELDS:
        return None
    get = doc.get
    event_id = get("event_id")
    customer_id = get("customer_id")
    event_type = get("type")
    text = get("occurred_at")
    if (type(event_id) is not str or not 0 < len(event_id) <= 128
            or type(customer_id) is not str or len(customer_id) > 128
            or CUSTOMER_ID_SHAPE.fullmatch(customer_id) is None
            or type(event_type) is not str or type(text) is not str):
        return None
    if event_type not in BUILTIN_TYPES and (
            _EVENT_TYPE.fullmatch(event_type) is None
            or not (policy.accept_unknown_types or event_type in policy.extra_types)):
        return None
    try:
        # Without _iso_time's test for epoch digits: digits alone never parse to an aware time.
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    if moment.year in (1, 9999):  # near the edges of the range an offset may overflow
        try:
            moment.astimezone(UTC)
        except OverflowError:
            return None
    at_ms = (moment - _EPOCH) // _MS
    if at_ms - now_ms > policy.max_future_skew_ms:
        return None
    for name in _LABEL_FIELDS:
        value = get(name)
        if value is not None and (type(value) is not str or not 0 < len(value) <= 128):
            return None
    if not _rarer_fields_fit(doc):
        return None
    doc["occurred_at"] = moment
    doc["at_ms"] = at_ms
    return doc


def _rarer_fields_fit(doc: dict[str, Any]) -> bool:
    get = doc.get
    version = get("schema_version", 1)
    if type(version) not in (int, float) or version != 1:
        return False
    amount = get("amount")
    if amount is not None and (type(amount) not in (int, float) or not 0 <= amount < _BIG):
        return False
    currency = get("currency")
    if currency is not None and (type(currency) is not str
                                 or _CURRENCY.fullmatch(currency) is None):
        return False
    zone = get("timezone")
    if zone is not None and (type(zone) is not str or not 0 < len(zone) <= 64
                             or not _known_zone(zone)):
        return False
    properties = get("properties", _ABSENT)
    return properties is _ABSENT or (type(properties) is dict and _plain(properties, 2))


def _plain(container: Any, depth: int) -> bool:
    """True if a properties value needs no second opinion: no huge floats, not too deep."""
    if depth > _MAX_DEPTH:
        return False
    values: Iterable[Any] = container.values() if type(container) is dict else container
    for value in values:
        kind = type(value)
        if kind is float:
            if not -_BIG < value < _BIG:
                return False
        elif (kind is dict or kind is list) and not _plain(value, depth + 1):
            return False
    return True
