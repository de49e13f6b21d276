"""The Faust shell: agents that decode, run the engine, publish outputs and count.

Two stages:

1. ``ingest`` reads raw ``touchpoints``, validates each record, re-keys valid ones by
   customer onto the internal events topic and dead-letters the rest.
2. ``advance`` reads the events topic in batches. Per batch it loads each customer's
   state once, applies the engine to the events in partition order, writes each
   touched customer's state once (one changelog record per customer per batch, not
   per event) and queues the outputs. Faust flushes the producer (changelog and
   outputs) before it commits the batch's offsets, so state and offsets stay consistent:
   after a crash the batch is replayed, and deterministic ids make the replay's outputs
   duplicates a consumer can drop.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
from faust.streams import _current_event

from journey import codec
from journey.contracts import DeadLetter
from journey.engine import CustomerState, Engine, StageChange, TriggerRequest
from journey.ingest import IngestPolicy, Rejection, decode
from journey.metrics import Metrics
from journey.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channels:
    """The Faust topic and table handles of one app."""

    touchpoints: Any
    events: Any
    stage_changes: Any
    triggers: Any
    dead_letters: Any
    states: Any


def declare(app: faust.App, topics: Topics) -> Channels:
    def topic(spec: Any, **kw: Any) -> Any:
        return app.topic(
            spec.name, partitions=spec.partitions, key_serializer="raw",
            value_serializer="raw", **kw,
        )

    return Channels(
        touchpoints=topic(topics.touchpoints),
        events=topic(topics.events, internal=True),
        stage_changes=topic(topics.stage_changes),
        triggers=topic(topics.triggers),
        dead_letters=topic(topics.dead_letters),
        states=app.Table(
            "customer-state",
            partitions=topics.events.partitions,
            schema=faust.Schema(
                key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            ),
            help="Journey state per customer id (JSON bytes of CustomerState).",
        ),
    )


def install_agents(
    app: faust.App,
    ch: Channels,
    *,
    engine: Engine,
    metrics: Metrics,
    policy: IngestPolicy,
    batch_max: int,
    batch_within_s: float,
) -> None:
    @app.agent(ch.touchpoints, name="ingest")
    async def ingest(stream: Any) -> None:
        async for batch in stream.take_events(batch_max, within=batch_within_s):
            now_ms = int(time.time() * 1000)
            for event in batch:
                _ingest_one(event, ch, metrics, policy, now_ms)

    @app.agent(ch.events, name="advance")
    async def advance(stream: Any) -> None:
        async for batch in stream.take_events(batch_max, within=batch_within_s):
            started = time.perf_counter()
            _advance_batch(batch, ch, engine, metrics)
            metrics.batch_size.observe(len(batch))
            metrics.batch_seconds.observe(time.perf_counter() - started)


def _ingest_one(
    event: Any, ch: Channels, metrics: Metrics, policy: IngestPolicy, now_ms: int
) -> None:
    message = event.message
    try:
        result = decode(event.value, policy=policy, now_ms=now_ms)
    except Exception as exc:  # A bug in our decoder must not stop the stream.
        log.exception("decoder failed on %s[%d]@%d", message.topic, message.partition,
                      message.offset)
        result = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
    if isinstance(result, Rejection):
        ch.dead_letters.send_soon(key=event.key, value=_dead_letter(result, event))
        metrics.events_dead_lettered.labels(result.reason).inc()
        return
    ch.events.send_soon(key=result.customer_id.encode(), value=codec.touchpoint_to_bytes(result))
    metrics.events_accepted.inc()


def _dead_letter(rejection: Rejection, event: Any) -> bytes:
    message = event.message
    key = event.key
    value = event.value if event.value is not None else b""
    record = DeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        field=rejection.field,
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        original_key_b64=None if key is None else base64.b64encode(key).decode(),
        original_value_b64=base64.b64encode(value).decode(),
        dead_lettered_at=datetime.now(UTC),
    )
    return record.model_dump_json().encode()


def _advance_batch(batch: Sequence[Any], ch: Channels, engine: Engine, metrics: Metrics) -> None:
    table = ch.states
    states: dict[str, CustomerState] = {}
    last_event_of: dict[str, Any] = {}
    for fevent in batch:
        event = codec.event_from_bytes(fevent.value)
        cid = event.customer_id
        state = states.get(cid)
        if state is None:
            stored = table.get(cid.encode())
            state = CustomerState.from_bytes(stored) if stored is not None else None
        step = engine.apply(state, event)
        states[cid] = step.state
        last_event_of[cid] = fevent
        metrics.events_processed.inc()
        for output in step.outputs:
            _publish(output, ch, metrics)
    # One write per touched customer. The table picks the changelog partition from the
    # current event, so point it at an event of that customer (same partition).
    token = _current_event.get(None)
    try:
        for cid, state in states.items():
            _set_current(last_event_of[cid])
            table[cid.encode()] = state.to_bytes()
    finally:
        _current_event.set(token)
    metrics.customers_tracked.set(len(table))


def _set_current(fevent: Any) -> None:
    import weakref

    _current_event.set(weakref.ref(fevent))


def _publish(output: StageChange | TriggerRequest, ch: Channels, metrics: Metrics) -> None:
    key = output.customer_id.encode()
    if isinstance(output, StageChange):
        ch.stage_changes.send_soon(
            key=key, value=codec.record_bytes(codec.stage_change_record(output))
        )
        metrics.stage_changes.labels(output.journey, output.to_stage).inc()
    else:
        ch.triggers.send_soon(key=key, value=codec.record_bytes(codec.trigger_record(output)))
        metrics.triggers_emitted.labels(output.journey, output.rule).inc()
