"""Bytes on the wire to and from the engine's types and the published contracts."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

import orjson

from journey.contract.decode import Rejection
from journey.contract.records import (
    DeadLetter,
    StageChanged,
    Touchpoint,
    TriggerAudited,
    TriggerEmitted,
)
from journey.engine.events import Event, from_epoch_ms, to_epoch_ms
from journey.engine.outputs import StageChange, TriggerRequest, TriggerSuppressed


def touchpoint_to_bytes(touchpoint: Touchpoint) -> bytes:
    """The canonical JSON of an accepted touchpoint, as put on the internal events topic."""
    return touchpoint.model_dump_json(exclude_none=True).encode()


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


def stage_change_record(change: StageChange) -> StageChanged:
    return StageChanged(
        change_id=change.change_id,
        customer_id=change.customer_id,
        journey=change.journey,
        from_stage=change.from_stage,
        to_stage=change.to_stage,
        cause_event_id=change.cause_event_id,
        occurred_at=from_epoch_ms(change.at_ms),
        seconds_in_previous_stage=(
            None if change.ms_in_previous_stage is None else change.ms_in_previous_stage / 1000
        ),
    )


def trigger_record(request: TriggerRequest) -> TriggerEmitted:
    return TriggerEmitted(
        trigger_id=request.trigger_id,
        customer_id=request.customer_id,
        journey=request.journey,
        rule=request.rule,
        episode=request.episode,
        kind="service" if request.kind == "service" else "marketing",
        reason=request.reason,
        details=request.details,
        occurred_at=from_epoch_ms(request.at_ms),
        valid_until=_time(request.valid_until_ms),
        send_at=_time(request.send_at_ms),
        offer_code=request.offer_code,
        priority=request.priority,
        stage=request.stage,
        status=request.status,
        temperature=_temperature(request.temperature),
        score=request.score,
        channel=request.channel,
    )


def audit_record(suppressed: TriggerSuppressed) -> TriggerAudited:
    request = suppressed.request
    return TriggerAudited(
        trigger_id=request.trigger_id,
        customer_id=request.customer_id,
        journey=request.journey,
        rule=request.rule,
        kind="service" if request.kind == "service" else "marketing",
        decision=_decision(suppressed.decision),
        reason=suppressed.reason,
        occurred_at=from_epoch_ms(request.at_ms),
        decided_at=_time(suppressed.at_ms),
        deferred_until=_time(suppressed.until_ms),
    )


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else from_epoch_ms(ms)


def _decision(value: str) -> Literal["suppressed", "deferred", "held_out", "cancelled"]:
    if value == "deferred":
        return "deferred"
    if value == "held_out":
        return "held_out"
    if value == "cancelled":
        return "cancelled"
    return "suppressed"


def _temperature(value: str | None) -> Literal["cold", "warm", "hot"] | None:
    if value == "cold":
        return "cold"
    if value == "warm":
        return "warm"
    if value == "hot":
        return "hot"
    return None


def dead_letter_record(
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    at: datetime,
) -> DeadLetter:
    """Why a record was rejected, where it came from, and its original bytes unchanged."""
    return DeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        field=rejection.field,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        original_key_b64=None if key is None else base64.b64encode(key).decode(),
        original_value_b64=base64.b64encode(value or b"").decode(),
        dead_lettered_at=at,
    )


def record_bytes(record: StageChanged | TriggerEmitted | TriggerAudited | DeadLetter) -> bytes:
    return record.model_dump_json().encode()
