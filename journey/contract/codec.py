"""Bytes on the wire to and from the engine's types and the published contracts.

The record builders (stage_change_record, ...) make the pydantic models, the contract's
single source, from one dict of fields per record. The *_bytes encoders are the hot path:
they dump the same dict with orjson, without a model, so they write the same bytes as
record_bytes(<builder>(...)), and hand any value the models would coerce, reject or write
their own way (a non-finite score, a naive time, an integer beyond 64 bits) to the model
path, so that every output, and every error, stays the same.
tests/unit/test_codec_fast.py holds them to that with hypothesis.
"""

from __future__ import annotations

import base64
import math
from datetime import datetime
from typing import Any, get_args

import orjson

from journey.contract.decode import CUSTOMER_ID_SHAPE, Rejection
from journey.contract.records import (
    SCHEMA_VERSION,
    DeadLetter,
    StageChanged,
    Touchpoint,
    TriggerAudited,
    TriggerEmitted,
)
from journey.engine.events import Event, from_epoch_ms, to_epoch_ms
from journey.engine.outputs import (
    Decision,
    Output,
    StageChange,
    Temperature,
    TriggerKind,
    TriggerRequest,
    TriggerSuppressed,
)


def touchpoint_to_bytes(touchpoint: Touchpoint) -> bytes:
    """The canonical JSON of an accepted touchpoint, as put on the internal events topic."""
    return touchpoint.model_dump_json(exclude_none=True).encode()


def event_from_touchpoint(tp: Touchpoint) -> Event:
    """The engine's event of a validated touchpoint, without the canonical bytes between."""
    return Event(
        event_id=tp.event_id,
        customer_id=tp.customer_id,
        type=tp.type,
        at_ms=to_epoch_ms(tp.occurred_at),
        channel=tp.channel,
        source=tp.source,
        campaign=tp.campaign,
        amount=tp.amount,
        currency=tp.currency,
        timezone=tp.timezone,
        properties=tp.properties,
    )


def event_from_bytes(data: bytes) -> Event:
    """Decode a record of the internal events topic, which the ingest stage already validated.

    The hot path: it skips pydantic and reads the canonical JSON directly.
    """
    raw: dict[str, Any] = orjson.loads(data)
    get = raw.get
    return Event(raw["event_id"], raw["customer_id"], raw["type"], _parse_ms(raw["occurred_at"]),
                 get("channel"), get("source"), get("campaign"), get("amount"), get("currency"),
                 get("timezone"), get("properties") or {})


def _parse_ms(text: str) -> int:
    return to_epoch_ms(datetime.fromisoformat(text))


# Each record's fields are written once, in the model's field order: the builders make the
# models of them, and the fast encoders below dump the same dict with orjson.

def _stage_change_fields(change: StageChange) -> dict[str, Any]:
    ms = change.ms_in_previous_stage
    return {
        "schema_version": SCHEMA_VERSION,
        "change_id": change.change_id, "customer_id": change.customer_id,
        "journey": change.journey, "from_stage": change.from_stage,
        "to_stage": change.to_stage, "cause_event_id": change.cause_event_id,
        "occurred_at": from_epoch_ms(change.at_ms),
        "seconds_in_previous_stage": None if ms is None else ms / 1000,
    }


def _trigger_fields(request: TriggerRequest, score: float | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "trigger_id": request.trigger_id, "customer_id": request.customer_id,
        "journey": request.journey, "rule": request.rule, "episode": request.episode,
        "kind": request.kind, "reason": request.reason, "details": request.details,
        "occurred_at": from_epoch_ms(request.at_ms), "valid_until": _time(request.valid_until_ms),
        "send_at": _time(request.send_at_ms), "offer_code": request.offer_code,
        "priority": request.priority, "stage": request.stage, "status": request.status,
        "temperature": request.temperature, "score": score, "channel": request.channel,
    }


def _audit_fields(suppressed: TriggerSuppressed) -> dict[str, Any]:
    request = suppressed.request
    return {
        "schema_version": SCHEMA_VERSION,
        "trigger_id": request.trigger_id, "customer_id": request.customer_id,
        "journey": request.journey, "rule": request.rule, "kind": request.kind,
        "decision": suppressed.decision, "reason": suppressed.reason,
        "occurred_at": from_epoch_ms(request.at_ms), "decided_at": _time(suppressed.at_ms),
        "deferred_until": _time(suppressed.until_ms),
    }


def _dead_letter_fields(
    rejection: Rejection, topic: str, partition: int, offset: int, key: bytes | None,
    value: bytes | None, at: datetime,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "reason": rejection.reason, "message": rejection.message, "field": rejection.field,
        "source_topic": topic, "source_partition": partition, "source_offset": offset,
        "original_key_b64": None if key is None else base64.b64encode(key).decode(),
        "original_value_b64": base64.b64encode(value or b"").decode(),
        "dead_lettered_at": at,
    }


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else from_epoch_ms(ms)


def stage_change_record(change: StageChange) -> StageChanged:
    return StageChanged(**_stage_change_fields(change))


def trigger_record(request: TriggerRequest) -> TriggerEmitted:
    return TriggerEmitted(**_trigger_fields(request, request.score))


def audit_record(suppressed: TriggerSuppressed) -> TriggerAudited:
    return TriggerAudited(**_audit_fields(suppressed))


def dead_letter_record(
    rejection: Rejection, *, topic: str, partition: int, offset: int, key: bytes | None,
    value: bytes | None, at: datetime,
) -> DeadLetter:
    """Why a record was rejected, where it came from, and its original bytes unchanged."""
    return DeadLetter(**_dead_letter_fields(rejection, topic, partition, offset, key, value, at))


def record_bytes(record: StageChanged | TriggerEmitted | TriggerAudited | DeadLetter) -> bytes:
    return record.model_dump_json().encode()


# --- the hot path: the same bytes as record_bytes(<builder>(...)), without the models ----
# Each encoder hands the model path whatever the models would coerce, reject or write their
# own way, and whatever orjson cannot write as they do.

_UTC_Z = orjson.OPT_UTC_Z
_NOT_AS_THE_MODELS = (orjson.JSONEncodeError, OverflowError, TypeError)
# The models' vocabularies: a value outside them goes to the model path, which rejects it.
_KINDS = frozenset(get_args(TriggerKind))
_DECISIONS = frozenset(get_args(Decision))
_TEMPERATURES = frozenset((*get_args(Temperature), None))


def output_bytes(output: Output) -> bytes:
    """The record bytes of any engine output (its topic follows from its type)."""
    if type(output) is StageChange:
        return stage_change_bytes(output)
    if type(output) is TriggerRequest:
        return trigger_bytes(output)
    if type(output) is TriggerSuppressed:
        return audit_bytes(output)
    raise TypeError(f"not an engine output: {type(output).__name__}")


def stage_change_bytes(change: StageChange) -> bytes:
    """record_bytes(stage_change_record(change)), faster."""
    if (_fits_contract(change.customer_id)
            and type(change.ms_in_previous_stage) in _SMALL_INT_OR_NONE):
        try:
            return orjson.dumps(_stage_change_fields(change), option=_UTC_Z)
        except _NOT_AS_THE_MODELS:
            pass
    return record_bytes(stage_change_record(change))


def trigger_bytes(request: TriggerRequest) -> bytes:
    """record_bytes(trigger_record(request)), faster."""
    score = request.score
    if (_fits_contract(request.customer_id) and type(request.priority) is int
            and (score is None or (type(score) is float and math.isfinite(score))
                 or type(score) is int)
            and request.kind in _KINDS and request.temperature in _TEMPERATURES):
        try:
            # The model writes a whole-number score as a float.
            return orjson.dumps(_trigger_fields(request, None if score is None else float(score)),
                                option=_UTC_Z)
        except _NOT_AS_THE_MODELS:
            pass
    return record_bytes(trigger_record(request))


def audit_bytes(suppressed: TriggerSuppressed) -> bytes:
    """record_bytes(audit_record(suppressed)), faster."""
    request = suppressed.request
    if (_fits_contract(request.customer_id) and request.kind in _KINDS
            and suppressed.decision in _DECISIONS):
        try:
            return orjson.dumps(_audit_fields(suppressed), option=_UTC_Z)
        except _NOT_AS_THE_MODELS:
            pass
    return record_bytes(audit_record(suppressed))


def dead_letter_bytes(
    rejection: Rejection, *, topic: str, partition: int, offset: int, key: bytes | None,
    value: bytes | None, at: datetime,
) -> bytes:
    """record_bytes(dead_letter_record(...)), faster."""
    offset_of_at = at.utcoffset()
    # orjson writes a naive time, or an offset with seconds, otherwise than pydantic.
    if (offset_of_at is not None and not offset_of_at.seconds % 60
            and not offset_of_at.microseconds and type(partition) is int
            and type(offset) is int):
        try:
            return orjson.dumps(_dead_letter_fields(
                rejection, topic, partition, offset, key, value, at), option=_UTC_Z)
        except _NOT_AS_THE_MODELS:
            pass
    return record_bytes(dead_letter_record(
        rejection, topic=topic, partition=partition, offset=offset, key=key, value=value, at=at))


_SMALL_INT_OR_NONE = (int, type(None))


def _fits_contract(customer_id: str) -> bool:
    """What the models check of an output beyond JSON types: the shape of a customer id."""
    return (type(customer_id) is str and len(customer_id) <= 128
            and CUSTOMER_ID_SHAPE.fullmatch(customer_id) is not None)
